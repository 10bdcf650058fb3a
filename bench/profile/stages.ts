/**
 * Where a gateway call's time goes: starts the embedded broker and the echo upstream (the
 * bench's processes) and a probed gateway (probed-gateway.ts), drives unary 100 B calls with
 * h2load at each concurrency, and prints per-stage latency percentiles from the gateway's
 * probes next to h2load's end-to-end latency, the CPU each process used and the Kafka
 * requests per call. The stage probes are hooks in src/kafka/ and src/west/ that are not kept in the
 * sources: `git apply bench/profile/stage-probes.patch` first (`git apply -R` after);
 * without them the stage table is empty and the rest still holds.
 *
 *   npx bun bench/profile/stages.ts [--concurrency 1,64] [--duration-ms 3000] [--partitions 3]
 *     [--cpu-prof DIR]   (then: npx bun bench/profile/cpuprofile-summary.ts DIR/*.cpuprofile)
 */
import { rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "../lib/echo-payload.ts";
import { runH2load, unaryEchoRun } from "../lib/h2load.ts";
import { percentile } from "../lib/stats.ts";

const args = parseArgs();
const concurrencies = (args.get("concurrency") ?? "1,64").split(",").map(Number);
const durationMs = Number(args.get("duration-ms") ?? 3000);
const partitions = Number(args.get("partitions") ?? 3);
const verbose = args.has("verbose");
const payloadBytes = Number(args.get("payload-bytes") ?? 100);

// [label, from stage, to stage]
const spans: [string, string, string][] = [
  ["north queue → flush", "n.q.msg", "n.flush"],
  ["north flush → acked", "n.flush", "n.ack"],
  ["north queue → west recv", "n.q.msg", "w.recv.msg"],
  ["west recv → run (lease, key order)", "w.recv.msg", "w.run"],
  ["west run → upstream call", "w.run", "w.up.start"],
  ["west upstream call → answered", "w.up.start", "w.up.done"],
  ["west answered → FINISHED queued", "w.up.done", "w.log.finished"],
  ["west FINISHED queued → acked", "w.log.finished", "w.log.finished.ack"],
  ["west FINISHED acked → reply end queued", "w.log.finished.ack", "w.rq.end"],
  ["west end queued → acked", "w.rq.end", "w.rack.end"],
  ["west end queued → north reply end", "w.rq.end", "n.reply.end"],
  ["north: queue → reply end (in gateway)", "n.q.msg", "n.reply.end"],
];

const broker = spawnChild<{ bootstrap: string }>(
  "broker",
  "processes/broker.ts",
  ["--partitions", String(partitions), "--topics", "echo-requests,echo-responses"],
  { verbose },
);
const echo = spawnChild<{ port: number }>("echo", "processes/echo.ts", [], { verbose });
const { bootstrap } = await broker.ready;
const { port: echoPort } = await echo.ready;
// --cpu-prof DIR: the gateway runs under the runtime's CPU profiler (Bun and Node both
// write a .cpuprofile into DIR when the process exits).
const profileDir = args.get("cpu-prof");
const execArgv = [...process.execArgv];
if (profileDir) process.execArgv.push("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
const gateway = spawnChild<{ port: number }>(
  "gateway",
  "profile/probed-gateway.ts",
  ["--bootstrap", bootstrap, "--echo-port", String(echoPort)],
  { verbose },
);
process.execArgv.splice(0, process.execArgv.length, ...execArgv);
const { port } = await gateway.ready;
const bodyFile = `${os.tmpdir()}/profile-body-${process.pid}`;
await writeFile(bodyFile, grpcFrame(echoRequestBytes(echoTextOfSize(payloadBytes))));
const fmt = (v: number) => (Number.isNaN(v) ? "   n/a" : v.toFixed(2).padStart(7));
try {
  for (const c of concurrencies) {
    const run = unaryEchoRun(port, bodyFile, c, payloadBytes);
    await runH2load({ ...run, durationMs: 500 });
    await gateway.request("record");
    const cpu = () =>
      Promise.all([gateway, broker, echo].map((p) => p.request<{ cpuUs: number }>("stats")));
    const cpu0 = await cpu();
    const result = await runH2load({ ...run, durationMs, logFile: `${bodyFile}.log` });
    const cpu1 = await cpu();
    const dump = await gateway.request<{
      stamps: Record<string, Record<string, number>>;
      requests: Record<string, number>;
    }>("dump", {}, 60_000);
    const stamps = dump.stamps;
    const e2e = [...result.latenciesMs].sort((a, b) => a - b);
    console.log(
      `\nc=${c}: ${(result.calls / (durationMs / 1000)).toFixed(0)} calls/s, h2load p50 ${fmt(percentile(e2e, 0.5))} p99 ${fmt(percentile(e2e, 0.99))} ms, failed ${result.failed}, ${Object.keys(stamps).length} calls probed`,
    );
    const busy = ["gateway", "broker", "echo"].map(
      (name, i) =>
        `${name} ${(((cpu1[i]?.cpuUs ?? 0) - (cpu0[i]?.cpuUs ?? 0)) / 10 / durationMs).toFixed(0)}%`,
    );
    console.log(`CPU busy over the window (100% = one core): ${busy.join(", ")}`);
    const perCall = Object.entries(dump.requests)
      .sort((x, y) => y[1] - x[1])
      .map(([k, n]) => `${k} ${(n / Math.max(1, result.calls)).toFixed(2)}`);
    console.log(`Kafka requests per call: ${perCall.join(", ")}`);
    console.log(`${"stage".padEnd(44)}    p50     p90     p99    mean`);
    for (const [label, from, to] of spans) {
      const d: number[] = [];
      for (const s of Object.values(stamps)) {
        const a = s[from];
        const b = s[to];
        if (a !== undefined && b !== undefined) d.push(b - a);
      }
      d.sort((x, y) => x - y);
      const mean = d.reduce((x, y) => x + y, 0) / d.length;
      console.log(
        `${label.padEnd(44)}${fmt(percentile(d, 0.5))} ${fmt(percentile(d, 0.9))} ${fmt(percentile(d, 0.99))} ${fmt(mean)}`,
      );
    }
  }
} finally {
  await rm(bodyFile, { force: true });
  await Promise.all([gateway.stop(2_000), echo.stop(2_000)]);
  await broker.stop(2_000);
}
