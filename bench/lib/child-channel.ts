/**
 * The child side of the bench's process protocol: one JSON object per line on stdout
 * (the first carries `ready`), commands as JSON lines on stdin answered by `id`. Logs go
 * to stderr so stdout stays machine-readable.
 */
import { createInterface } from "node:readline";

export type Command = { id: number; cmd: string } & Record<string, unknown>;
export type CommandHandler = (command: Command) => unknown;

/** Writes one protocol line to stdout. */
export function emit(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Announces readiness with whatever the parent needs (ports, timings). */
export function emitReady(fields: object = {}): void {
  emit({ ready: true, ...fields });
}

/**
 * Answers stdin commands with `handler`; when stdin ends (the parent stopped us or died)
 * runs `onClose` and exits, so no bench process outlives the run.
 */
export function serveCommands(handler: CommandHandler, onClose: () => Promise<void>): void {
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let command: Command;
    try {
      command = JSON.parse(line) as Command;
    } catch {
      return;
    }
    Promise.resolve()
      .then(() => handler(command))
      .then(
        (result) => emit({ id: command.id, ok: true, result: result ?? null }),
        (err: unknown) => emit({ id: command.id, ok: false, error: errorText(err) }),
      );
  });
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(0), 5_000);
    force.unref?.();
    onClose()
      .catch((err: unknown) => process.stderr.write(`close failed: ${errorText(err)}\n`))
      .finally(() => process.exit(0));
  };
  lines.on("close", close);
  process.on("SIGTERM", close);
}

/** The message of anything thrown. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Parses `--name value` pairs from argv into a map. */
export function parseArgs(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg?.startsWith("--")) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out.set(arg.slice(2), "true");
    else {
      out.set(arg.slice(2), next);
      i++;
    }
  }
  return out;
}

/** A required numeric argument. */
export function numberArg(args: Map<string, string>, name: string, fallback?: number): number {
  const text = args.get(name);
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing --${name}`);
  }
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${text}`);
  return n;
}

/** A required text argument. */
export function stringArg(args: Map<string, string>, name: string, fallback?: string): string {
  const text = args.get(name) ?? fallback;
  if (text === undefined) throw new Error(`missing --${name}`);
  return text;
}
