/**
 * The gateway as a child process, for CLI and runtime scenario tests: spawn it the way a
 * person would, wait for lines on its stdout, read the ports it bound from its "gateway
 * ready" log line, signal it like Ctrl-C does (the whole process group), and run commands
 * (`buf curl` is in buf-curl.ts).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const exampleConfig = "examples/grpc.kafka.proxy/zilla.yaml";
export const exampleKeystorePassword = "zilla-example";

/** A binary installed by npm into node_modules/.bin. */
export function bin(name: string): string {
  return join(repoRoot, "node_modules", ".bin", name);
}

export type Runtime = "bun" | "node" | "deno";

/** The command that runs the CLI under `runtime` (node runs the build in dist/). */
export function cliCommand(runtime: Runtime): { command: string; args: string[] } {
  switch (runtime) {
    case "bun":
      return { command: bin("bun"), args: ["src/cli.ts"] };
    case "node":
      return { command: process.execPath, args: ["dist/src/cli.js"] };
    case "deno":
      return { command: bin("deno"), args: ["run", "-A", "--sloppy-imports", "src/cli.ts"] };
  }
}

/** The fields of the "gateway ready" log line the tests use. */
export interface ReadyLine {
  /** Bound ports per north binding, in listener order. */
  north: number[][];
  opsPort?: number;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stdout (waiting for more output). */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for the "gateway ready" log line and parses it. */
  ready(timeoutMs?: number): Promise<ReadyLine>;
  /** Sends `signal` to the process group, as a terminal does for Ctrl-C. */
  signal(signal: NodeJS.Signals): void;
  /** The exit code (null when ended by a signal). */
  readonly exited: Promise<number | null>;
  /** Kills the group if it is still running (cleanup). */
  kill(): Promise<void>;
}

/** Starts `command` in its own process group with `cwd` = the repository. */
export function spawnGateway(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): GatewayProcess {
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    wake();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  let running = true;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      running = false;
      wake();
      resolve(code);
    });
    child.once("error", () => {
      running = false;
      wake();
      resolve(null);
    });
  });
  const describe = () =>
    `\n--- stdout ---\n${out.slice(-4000)}\n--- stderr ---\n${err.slice(-4000)}`;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };

  const proc: GatewayProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStdout(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = out.match(pattern);
          if (match) {
            done();
            resolve(match);
          } else if (!running) {
            done();
            reject(new Error(`process exited before printing ${pattern}${describe()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${pattern} on stdout within ${timeoutMs} ms${describe()}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async ready(timeoutMs) {
      const [line] = await proc.waitForStdout(/^\{.*"msg":"gateway ready".*\}$/m, timeoutMs);
      return JSON.parse(line) as ReadyLine;
    },
    signal: signalGroup,
    exited,
    async kill() {
      if (!running) return;
      signalGroup("SIGKILL");
      await exited;
    },
  };
  return proc;
}

/** Starts the CLI under `runtime` with `args`. */
export function spawnCli(
  runtime: Runtime,
  args: string[],
  env: Record<string, string> = {},
): GatewayProcess {
  const { command, args: base } = cliCommand(runtime);
  return spawnGateway(command, [...base, ...args], env);
}

/** Waits for the exit code, failing after `timeoutMs` (the process is then killed). */
export async function exitCode(proc: GatewayProcess, timeoutMs: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const result = await Promise.race([proc.exited, timeout]);
  clearTimeout(timer);
  if (result === "timeout") {
    await proc.kill();
    throw new Error(
      `no exit within ${timeoutMs} ms\n--- stdout ---\n${proc.stdout().slice(-4000)}\n--- stderr ---\n${proc.stderr().slice(-4000)}`,
    );
  }
  return result;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion in the repository; never throws on a non-zero exit. */
export function run(
  command: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: repoRoot,
        env: { ...process.env, ...opts.env },
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/**
 * The example config, unchanged (or `config`, a copy), started by the CLI under `runtime` on
 * free ports (ops port included), against `bootstrap` and the echo upstream on
 * 127.0.0.1:`echoPort`, with `extraArgs` after the usual ones.
 */
export function spawnExample(
  runtime: Runtime,
  bootstrap: string,
  echoPort: number,
  extraArgs: string[] = [],
  config = exampleConfig,
): GatewayProcess {
  return spawnCli(
    runtime,
    [
      "start",
      "--config",
      config,
      "--kafka-servers",
      bootstrap,
      "--ephemeral-ports",
      "--ops-port",
      "0",
      ...extraArgs,
    ],
    {
      KEYSTORE_PASSWORD: exampleKeystorePassword,
      ECHO_SERVER_HOST: "127.0.0.1",
      ECHO_SERVER_PORT: String(echoPort),
    },
  );
}

/** Writes the certificate of the example's keystore (as its README shows) to `outPath`, for clients to trust. */
export function writeExampleCertificate(outPath: string): void {
  execFileSync(
    "openssl",
    [
      "pkcs12",
      "-in",
      join(repoRoot, "examples/grpc.kafka.proxy/tls/localhost.p12"),
      "-passin",
      `pass:${exampleKeystorePassword}`,
      "-nokeys",
      "-out",
      outPath,
    ],
    { stdio: "ignore" },
  );
}
