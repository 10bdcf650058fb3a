/**
 * The few things that differ between Node, Bun and Deno, in one place. Everything else in
 * the gateway is written once against `node:*` modules and Web standards, which all three
 * runtimes provide. Other runtime-specific behaviour lives beside this file:
 * `http2-batching.ts` (Bun flushes a socket write per stream end) and `http2-windows.ts`
 * (receive windows, where the runtime lets a session widen its own).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The JavaScript runtime this process runs on. */
export type RuntimeName = "node" | "bun" | "deno";

interface RuntimeGlobals {
  Bun?: { version: string };
  Deno?: { version: { deno: string }; unrefTimer(id: number): void };
}

const globals = globalThis as RuntimeGlobals;

/** Which runtime runs this process (Bun and Deno both also look like Node). */
export const runtimeName: RuntimeName = globals.Bun ? "bun" : globals.Deno ? "deno" : "node";

/**
 * Whether a TLS server here verifies client certificates against its `ca` (mutual TLS).
 * Deno's (2.9) accepts the option but verifies nothing against it: every client certificate
 * comes out unauthorized, and `rejectUnauthorized` refuses them all.
 */
export const verifiesClientCertificates = runtimeName !== "deno";

/** The runtime's name and version, for logs and `--version`. */
export function runtimeDescription(): string {
  if (globals.Bun) return `bun ${globals.Bun.version}`;
  if (globals.Deno) return `deno ${globals.Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

/** A timer that never keeps the process alive: Node and Bun unref objects, Deno unrefs ids. */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
    return;
  }
  globals.Deno?.unrefTimer(timer as unknown as number);
}

/**
 * A file of the repository, from a module of `src/`: the sources run as they are under Bun
 * and Deno (src/x.ts), while Node runs the build (dist/src/x.js), one folder deeper.
 * `fromModule` is the caller's `import.meta.url`; `path` is relative to the repository root.
 */
export function repositoryFile(fromModule: string, path: string, depth = 1): string {
  const candidates = [depth, depth + 1].map((up) =>
    fileURLToPath(new URL(`${"../".repeat(up)}${path}`, fromModule)),
  );
  return candidates.find((candidate) => existsSync(candidate)) ?? (candidates[0] as string);
}
