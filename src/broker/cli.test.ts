/**
 * The broker CLI as a user runs it, under Bun and Deno: it prints where it listens, serves
 * Kafka requests, and exits 0 on SIGTERM and SIGINT; --help prints the options and exits 0;
 * bad flags exit 2 with the usage.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { WireClient } from "./wire-client.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const bin = (name: string): string => `${root}node_modules/.bin/${name}`;
const RUNTIMES: [string, string, string[]][] = [
  ["bun", bin("bun"), ["src/broker/cli.ts"]],
  ["deno", bin("deno"), ["run", "-A", "--sloppy-imports", "src/broker/cli.ts"]],
];

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

function run(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  return child;
}

function listeningAddress(child: ChildProcess): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^broker listening on (\S+):(\d+)$/m.exec(out);
      if (match) resolve({ host: match[1] as string, port: Number(match[2]) });
    });
    child.once("exit", (code) => reject(new Error(`exited with ${code} before listening`)));
  });
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe.each(RUNTIMES)("broker CLI under %s", (_name, command, prefix) => {
  it("listens, answers requests and stops cleanly on SIGTERM and SIGINT", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const child = run(command, [...prefix, "--port", "0", "--partitions", "3"]);
      const { host, port } = await listeningAddress(child);
      expect(host).toBe("127.0.0.1");
      const client = await WireClient.connect(host, port);
      const r = await client.request(ApiKey.ApiVersions, 0, () => {});
      expect(r.int16()).toBe(0);
      child.kill(signal);
      expect(await exitCode(child)).toBe(0);
      await client.closed;
    }
  }, 60_000);

  it("prints its options and defaults for --help and exits 0", async () => {
    const child = run(command, [...prefix, "--help"]);
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    expect(await exitCode(child)).toBe(0);
    expect(out).toContain("usage: broker");
    expect(out).toContain("--port N              listen port (default 9092");
  }, 60_000);

  it("refuses an unknown flag with the usage and exit code 2", async () => {
    const child = run(command, [...prefix, "--bogus"]);
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    expect(await exitCode(child)).toBe(2);
    expect(err).toContain("unknown argument --bogus");
    expect(err).toContain("usage: broker");
  }, 60_000);
});
