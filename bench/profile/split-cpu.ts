/**
 * CPU per call of every process on the gateway's path, as the bench deploys it (broker,
 * echo upstream, north and west as two processes, h2load): drives unary 100 B calls with
 * h2load and reads each process's CPU time from /proc (Linux), so the figures include
 * every thread of a process (GC and JIT helpers) and the kernel time its syscalls take.
 * `--scenario server-stream|bidi` drives the streaming calls with the bench's two
 * load-client processes instead (their CPU is listed too: on 2 cores it competes with the
 * gateway's).
 * The CPU the rest of the machine used in the window is printed too ("others"): on a shared
 * machine a window with much of it measured a contended gateway.
 * Profilers that sample the JS thread's wall time cannot tell those apart on a loaded
 * 2-core machine (a socket write that wakes another process looks expensive).
 *
 *   npx bun bench/profile/split-cpu.ts [--concurrency 1,64] [--duration-ms 5000]
 *     [--payload-bytes 100] [--deployment split|single] [--cpu-prof DIR [--cpu-prof-broker]]
 *     [--idempotency-store kafka|memory] [--scenario unary|server-stream|bidi]
 *     [--retention-ms N]   (the broker's age limit; bench/processes/broker.ts's default)
 *     [--client raw|connect]   (streaming load clients: raw node:http2 streams or Connect)
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "../lib/echo-payload.ts";
import { runH2load, unaryEchoRun } from "../lib/h2load.ts";
import { processCpuSeconds as cpuSeconds, parseCpuTicks } from "../lib/machine-cpu.ts";
import { type LoadRunResult, type Scenario, scenarios } from "../lib/scenarios.ts";

const args = parseArgs();
const concurrencies = (args.get("concurrency") ?? "1,64").split(",").map(Number);
const durationMs = Number(args.get("duration-ms") ?? 5000);
const payloadBytes = Number(args.get("payload-bytes") ?? 100);
const deployment = args.get("deployment") ?? "split";
const scenarioId = args.get("scenario") ?? "unary";
const streaming: Scenario | undefined = scenarios.find(
  (s) => s.id === scenarioId && s.kind !== "unary",
);
if (scenarioId !== "unary" && !streaming) throw new Error(`--scenario ${scenarioId}: unknown`);
const ticksPerSecond = 100;

/** Busy and idle CPU time of the whole machine so far, in ticks. */
function machineTicks(): { busy: number; idle: number } {
  return parseCpuTicks(readFileSync("/proc/stat", "utf8"));
}

/** Direct children of a process (the west process is north's child in a split gateway). */
function childrenOf(pid: number): Promise<number[]> {
  return new Promise((resolve) => {
    execFile("pgrep", ["-P", String(pid)], (_err, stdout) =>
      resolve(stdout.split("\n").filter(Boolean).map(Number)),
    );
  });
}

// --cpu-prof DIR: north and west run under the runtime's CPU profiler (a .cpuprofile each
// in DIR when they exit; it samples the JS thread's wall time, see above); with
// --cpu-prof-broker the broker does too.
const profileDir = args.get("cpu-prof");
const execArgv = [...process.execArgv];
const profileArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
if (args.has("cpu-prof-broker")) process.execArgv.push(...profileArgs);
const broker = spawnChild<{ bootstrap: string }>("broker", "processes/broker.ts", [
  "--partitions",
  "3",
  "--topics",
  "echo-requests,echo-responses",
  ...(args.has("retention-ms") ? ["--retention-ms", args.get("retention-ms") as string] : []),
]);
process.execArgv.splice(0, process.execArgv.length, ...execArgv);
const echo = spawnChild<{ port: number }>("echo", "processes/echo.ts", []);
const loadClients = streaming
  ? [1, 2].map((i) => spawnChild<object>(`load-${i}`, "processes/load-client.ts", []))
  : [];
await Promise.all(loadClients.map((c) => c.ready));
const { bootstrap } = await broker.ready;
const { port: echoPort } = await echo.ready;
process.execArgv.push(...profileArgs);
const gateway = spawnChild<{ port: number }>("gateway", "processes/gateway.ts", [
  "--bootstrap",
  bootstrap,
  "--echo-port",
  String(echoPort),
  "--request-topic",
  "echo-requests",
  "--reply-topic",
  "echo-responses",
  "--deployment",
  deployment,
  ...(args.has("idempotency-store")
    ? ["--idempotency-store", args.get("idempotency-store") as string]
    : []),
]);
const { port } = await gateway.ready;
process.execArgv.splice(0, process.execArgv.length, ...execArgv);
const [westPid] = await childrenOf(gateway.pid);
const bodyFile = `${os.tmpdir()}/split-cpu-body-${process.pid}`;
await writeFile(bodyFile, grpcFrame(echoRequestBytes(echoTextOfSize(payloadBytes))));
const processes: [string, number][] = [
  ["north", gateway.pid],
  ...(westPid ? ([["west", westPid]] as [string, number][]) : []),
  ["echo", echo.pid],
  ["broker", broker.pid],
  ...loadClients.map((c, i) => [`load-${i + 1}`, c.pid] as [string, number]),
];

/** One measured (or warm-up) window of streaming calls over the two load clients. */
async function runStreaming(scenario: Scenario, c: number, windowMs: number) {
  const results = await Promise.all(
    loadClients.map((client, i) =>
      client.request<LoadRunResult>("run", {
        url: `http://127.0.0.1:${port}`,
        client: args.get("client") === "connect" ? "connect" : "raw",
        request: {
          scenario,
          concurrency: Math.floor(c / 2) + (i < c % 2 ? 1 : 0),
          connections: 2,
          warmupMs: 0,
          durationMs: windowMs,
        },
      }),
    ),
  );
  return {
    calls: results.reduce((a, r) => a + r.calls, 0),
    failed: results.reduce((a, r) => a + r.failed, 0),
  };
}
try {
  for (const c of concurrencies) {
    const run = unaryEchoRun(port, bodyFile, c, payloadBytes);
    if (streaming) await runStreaming(streaming, c, 1000);
    else await runH2load({ ...run, durationMs: 1000 });
    const before = processes.map(([, pid]) => cpuSeconds(pid));
    const selfBefore = process.resourceUsage();
    const machineBefore = machineTicks();
    const result = streaming
      ? await runStreaming(streaming, c, durationMs)
      : await runH2load({ ...run, durationMs, logFile: `${bodyFile}.log` });
    const selfAfter = process.resourceUsage();
    const machineAfter = machineTicks();
    const busyTicks = machineAfter.busy - machineBefore.busy;
    const idleTicks = machineAfter.idle - machineBefore.idle;
    const idleShare = idleTicks / (busyTicks + idleTicks);
    const after = processes.map(([, pid]) => cpuSeconds(pid));
    const calls = result.calls;
    const perCall = (seconds: number) => `${((seconds / calls) * 1e6).toFixed(0)} µs`;
    const rows = processes.map(([name], i) => [name, (after[i] ?? 0) - (before[i] ?? 0)] as const);
    const loadCpu =
      (selfAfter.userCPUTime +
        selfAfter.systemCPUTime -
        selfBefore.userCPUTime -
        selfBefore.systemCPUTime) /
      1e6;
    console.log(
      `\nc=${c}: ${((calls / durationMs) * 1000).toFixed(0)} calls/s, ${result.failed} failed, machine ${(idleShare * 100).toFixed(0)}% idle`,
    );
    let total = 0;
    for (const [name, seconds] of rows) {
      total += seconds;
      console.log(
        `  ${name.padEnd(8)} ${perCall(seconds).padStart(8)} per call  ${((seconds / durationMs) * 1e5).toFixed(0).padStart(4)}% of a core`,
      );
    }
    console.log(
      `  ${"total".padEnd(8)} ${perCall(total).padStart(8)} per call (${streaming ? "" : "h2load and "}this driver not counted; driver ${perCall(loadCpu)})`,
    );
    // CPU the machine spent outside these processes (other work on a shared machine, or
    // h2load): a window where it is high measured a contended gateway, not a slower one.
    const busySeconds = busyTicks / ticksPerSecond;
    const otherSeconds = Math.max(0, busySeconds - total - loadCpu);
    console.log(
      `  ${"others".padEnd(8)} ${((otherSeconds / durationMs) * 1e5).toFixed(0).padStart(4)}% of a core (the rest of the machine${streaming ? "" : ", h2load included"})`,
    );
  }
} finally {
  await rm(bodyFile, { force: true });
  await Promise.all([
    gateway.stop(2_000),
    echo.stop(2_000),
    ...loadClients.map((c) => c.stop(2_000)),
  ]);
  await broker.stop(2_000);
}
