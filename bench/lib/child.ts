/**
 * The parent side of the bench's process protocol (see child-channel.ts): spawns a bench
 * process with the same runtime as the harness, waits for its ready line, and sends it
 * commands.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface BenchChild<Ready> {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the ready line; rejects if the process exits first or times out. */
  readonly ready: Promise<Ready>;
  /** Milliseconds from spawn to the ready line (NaN until ready). */
  readonly spawnToReadyMs: number;
  request<T>(cmd: string, fields?: object, timeoutMs?: number): Promise<T>;
  /** Ends stdin (the child closes itself), then kills after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines the child wrote on stderr, for error reports. */
  stderrTail(): string;
}

export interface SpawnOptions {
  /** Forward the child's stderr to ours as it arrives. */
  verbose?: boolean;
  readyTimeoutMs?: number;
}

const benchDir = fileURLToPath(new URL("..", import.meta.url));
// Compiled for Node (dist/bench/**.js) the scripts are .js files next to this one.
const compiled = import.meta.url.endsWith(".js");

const sourceBenchDir = compiled
  ? fileURLToPath(new URL("../../../bench/", import.meta.url))
  : benchDir;

/** Absolute path of a file under the bench scripts' folder (dist/bench/ when compiled). */
export function benchPath(relative: string): string {
  return `${benchDir}${relative}`;
}

/** Absolute path under the source tree's bench/ (results are kept there either way). */
export function sourceBenchPath(relative: string): string {
  return `${sourceBenchDir}${relative}`;
}

/** Absolute path of a bench script, `.ts` or compiled `.js` as this harness runs. */
function scriptPath(script: string): string {
  return benchPath(compiled ? script.replace(/\.ts$/, ".js") : script);
}

/**
 * The runtime flags children need: whatever the harness was started with (e.g. Node's
 * type stripping), and on Node a callable GC for memory figures (Bun has Bun.gc).
 */
function runtimeArgs(): string[] {
  const args = process.execArgv.filter((arg) => !arg.startsWith("--inspect"));
  const isBun = (process.versions as { bun?: string }).bun !== undefined;
  if (!isBun && !args.includes("--expose-gc")) args.push("--expose-gc");
  return args;
}

/**
 * Bun's allocator settings in every process the bench starts (gateway, both floors, broker,
 * upstream, load clients), as the gateway's launchers set them (docs/limits.md, "Memory and
 * the allocator"): the floors get the same tuning as the gateway. MIMALLOC_PURGE_DELAY and
 * MIMALLOC_PURGE_HOLES in the harness's environment override them.
 */
export const allocatorPurgeDelay = process.env.MIMALLOC_PURGE_DELAY ?? "1000";
export const allocatorPurgeHoles = process.env.MIMALLOC_PURGE_HOLES ?? "0";

/**
 * How long after a collection the allocator has handed back the pages it emptied: its purge
 * delay and a margin (0 when it never hands them back).
 */
export function allocatorSettleMs(): number {
  const delay = Number(allocatorPurgeDelay);
  return Number.isFinite(delay) && delay >= 0 ? delay + 500 : 0;
}

/** Spawns `bench/<script>` with the harness's runtime. */
export function spawnChild<Ready extends object>(
  name: string,
  script: string,
  args: string[],
  opts: SpawnOptions = {},
): BenchChild<Ready> {
  const started = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [...runtimeArgs(), scriptPath(script), ...args],
    {
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        MIMALLOC_PURGE_DELAY: allocatorPurgeDelay,
        MIMALLOC_PURGE_HOLES: allocatorPurgeHoles,
      },
    },
  );
  let readyAt = Number.NaN;
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const stderrLines: string[] = [];
  let exited = false;
  let resolveReady: (v: Ready) => void = () => {};
  let rejectReady: (e: Error) => void = () => {};
  const ready = new Promise<Ready>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // The caller may only look at `ready` later; an early failure must not crash the harness.
  ready.catch(() => {});

  const readyTimer = setTimeout(
    () => rejectReady(new Error(`${name}: not ready after ${opts.readyTimeoutMs ?? 30_000} ms`)),
    opts.readyTimeoutMs ?? 30_000,
  );

  let stdoutBuffer = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    stdoutBuffer += chunk;
    for (;;) {
      const nl = stdoutBuffer.indexOf("\n");
      if (nl < 0) break;
      const line = stdoutBuffer.slice(0, nl);
      stdoutBuffer = stdoutBuffer.slice(nl + 1);
      onLine(line);
    }
  });
  const onLine = (line: string) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      // Not ours (a library printing to stdout): keep it with stderr for diagnosis.
      pushStderr(line);
      return;
    }
    if (message.ready === true && Number.isNaN(readyAt)) {
      readyAt = performance.now();
      clearTimeout(readyTimer);
      resolveReady(message as Ready);
      return;
    }
    const id = typeof message.id === "number" ? message.id : undefined;
    const waiter = id === undefined ? undefined : pending.get(id);
    if (id === undefined || !waiter) return;
    pending.delete(id);
    if (message.ok === true) waiter.resolve(message.result);
    else waiter.reject(new Error(`${name}: ${String(message.error)}`));
  };

  const pushStderr = (text: string) => {
    for (const line of text.split("\n")) {
      if (!line) continue;
      stderrLines.push(line);
      if (stderrLines.length > 40) stderrLines.shift();
      if (opts.verbose) process.stderr.write(`[${name}] ${line}\n`);
    }
  };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => pushStderr(chunk));

  const exit = new Promise<void>((resolve) => {
    child.on("exit", (code, signal) => {
      exited = true;
      clearTimeout(readyTimer);
      const why = new Error(
        `${name} exited (code ${code}, signal ${signal})\n${stderrLines.slice(-10).join("\n")}`,
      );
      rejectReady(why);
      for (const waiter of pending.values()) waiter.reject(why);
      pending.clear();
      resolve();
    });
    child.on("error", (err) => {
      rejectReady(err);
      resolve();
    });
  });
  // A dead child must not take the harness down with EPIPE.
  child.stdin?.on("error", () => {});

  return {
    name,
    pid: child.pid ?? -1,
    ready,
    get spawnToReadyMs() {
      return readyAt - started;
    },
    request<T>(cmd: string, fields: object = {}, timeoutMs = 120_000): Promise<T> {
      if (exited) return Promise.reject(new Error(`${name} has exited`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: no answer to ${cmd} after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.stdin?.write(`${JSON.stringify({ id, cmd, ...fields })}\n`);
      });
    },
    async stop(graceMs = 5_000) {
      if (exited) return;
      child.stdin?.end();
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, graceMs);
      await exit;
      clearTimeout(timer);
    },
    stderrTail() {
      return stderrLines.join("\n");
    },
  };
}
