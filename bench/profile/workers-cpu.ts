/**
 * Where the CPU goes with `gateway start --workers N`: the example config on topics of 16
 * partitions, driven by h2load (unary 100 B, 64 calls by default on 8 connections), for each setting
 * given (workers:reply-partitions); prints calls/s and CPU seconds per 1,000 calls of the gateway (parent and workers),
 * the broker and the echo upstream, read from /proc. Settings alternate, so drift on a shared
 * machine hits each alike.
 *
 *   bun bench/profile/workers-cpu.ts [--settings 1:all,1:group,2:group] [--rounds 2]
 *     [--duration-ms 5000] [--concurrency 64]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "../lib/echo-payload.ts";
import { runH2load } from "../lib/h2load.ts";
import { processCpuSeconds } from "../lib/machine-cpu.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? fallback) : fallback;
};
const settings = option("settings", "1:all,2:group").split(",");
const rounds = Number(option("rounds", "2"));
const durationMs = Number(option("duration-ms", "5000"));
const concurrency = Number(option("concurrency", "64"));

/** A bench process and the JSON line it prints when ready. */
async function benchProcess(script: string, args: string[]) {
  const child = spawn(process.execPath, [join(repo, "bench", script), ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ready = await new Promise<Record<string, unknown>>((resolve) =>
    child.stdout?.once("data", (d) => resolve(JSON.parse(String(d).split("\n")[0] ?? "{}"))),
  );
  return { child, ready };
}

/** CPU seconds a process used so far; 0 for one that is gone. */
function cpuSeconds(pid: number): number {
  const seconds = processCpuSeconds(pid);
  return Number.isNaN(seconds) ? 0 : seconds;
}

function childrenOf(pid: number): number[] {
  try {
    const out = execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)]).toString();
    return out.split("\n").map(Number).filter(Boolean);
  } catch {
    return [];
  }
}

const echo = await benchProcess("processes/echo.ts", []);
const broker = await benchProcess("processes/broker.ts", [
  "--partitions",
  "16",
  "--topics",
  "workers-requests,workers-responses",
]);
const dir = mkdtempSync(join(tmpdir(), "workers-cpu-"));
cpSync(join(repo, "examples/grpc.kafka.proxy"), dir, { recursive: true });
const config = join(dir, "zilla.yaml");
writeFileSync(
  config,
  readFileSync(config, "utf8")
    .replaceAll("echo-requests", "workers-requests")
    .replaceAll("echo-responses", "workers-responses")
    .replace(/\ntelemetry:[\s\S]*$/, "\n"),
);
const body = join(dir, "body");
writeFileSync(body, grpcFrame(echoRequestBytes(echoTextOfSize(100))));

try {
  for (let round = 0; round < rounds; round++) {
    for (const setting of settings) {
      const [workers = "1", partitions = "all"] = setting.split(":");
      const gateway: ChildProcess = spawn(
        process.execPath,
        [
          join(repo, "src/cli.ts"),
          "start",
          "--config",
          config,
          "--kafka-servers",
          String(broker.ready.bootstrap),
          "--ephemeral-ports",
          "--ops-port",
          "off",
          "--workers",
          workers,
          "--reply-partitions",
          partitions,
        ],
        {
          env: {
            ...process.env,
            KEYSTORE_PASSWORD: "zilla-example",
            ECHO_SERVER_HOST: "127.0.0.1",
            ECHO_SERVER_PORT: String(echo.ready.port),
          },
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      let out = "";
      const port = await new Promise<number>((resolve) =>
        gateway.stdout?.on("data", (d) => {
          out += d;
          const line = out.split("\n").find((l) => l.includes('"msg":"gateway ready"'));
          if (line) resolve((JSON.parse(line) as { north: number[][] }).north[0]?.[0] ?? 0);
        }),
      );
      const run = {
        url: `http://127.0.0.1:${port}/grpc.examples.echo.Echo/UnaryEcho`,
        bodyFile: body,
        concurrency,
        connections: 8,
        responseBytes: 105,
      };
      await runH2load({ ...run, durationMs: 1_000 });
      const groups = {
        gateway: [gateway.pid as number, ...childrenOf(gateway.pid as number)],
        broker: [broker.child.pid as number],
        echo: [echo.child.pid as number],
      };
      const used = () =>
        Object.fromEntries(
          Object.entries(groups).map(([k, pids]) => [
            k,
            pids.reduce((s, p) => s + cpuSeconds(p), 0),
          ]),
        );
      const before = used();
      const result = await runH2load({ ...run, durationMs });
      const after = used();
      const per1k = (k: string) =>
        ((((after[k] ?? 0) - (before[k] ?? 0)) / result.calls) * 1000).toFixed(3);
      const cores = (((after.gateway ?? 0) - (before.gateway ?? 0)) / (durationMs / 1000)).toFixed(
        2,
      );
      console.log(
        `${setting.padEnd(8)} ${Math.round((result.calls / durationMs) * 1000)} calls/s; CPU s per 1k calls: gateway ${per1k("gateway")} (${cores} cores), broker ${per1k("broker")}, echo ${per1k("echo")}`,
      );
      gateway.kill("SIGTERM");
      await new Promise((resolve) => gateway.once("exit", resolve));
    }
  }
} finally {
  echo.child.kill();
  broker.child.kill();
  rmSync(dir, { recursive: true, force: true });
}
