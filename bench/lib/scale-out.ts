/**
 * The scale-out phase of the benchmark (docs/scaling.md): many north instances on one reply
 * topic, and one host's worth of workers.
 *
 * Reply read amplification: 1, 2, 4 and 8 north instances (bench/processes/norths.ts) on a
 * reply topic of 16 partitions, one west process answering, closed-loop unary load spread
 * evenly over the instances (one h2load per instance). Amplification = reply records the
 * instances fetched ÷ reply records west produced (the topic's end offsets), measured with
 * every instance reading every partition (`all`, how north read replies before) and with
 * the partitions shared out by the reply group (`group`).
 *
 * Workers: `gateway start --workers 1` against `--workers 2` (each worker north and west),
 * through the CLI as a user runs it, rounds interleaved; speedup = median calls/s of 2 ÷ of 1.
 * With 4 cores or more the workers are pinned to cores 0–1 and the broker and echo upstream to
 * the others (`taskset`); on a 2-core machine everything shares the two cores, which the
 * results say.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KafkaCluster } from "../../src/kafka/client/kafka-cluster.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { sourceBenchPath, spawnChild } from "./child.ts";
import { runH2load } from "./h2load.ts";
import { round } from "./stats.ts";

export const scaleOutTopics = { requestTopic: "scale-requests", replyTopic: "scale-responses" };
// Topics of their own: a west group new to the topics above would first work through every
// request the amplification runs left there.
const workersTopics = { requestTopic: "workers-requests", replyTopic: "workers-responses" };
const replyPartitions = 16;

export interface ReplyReadPoint {
  instances: number;
  /** all: every instance reads every partition; group: the reply group shares them out. */
  mode: "all" | "group";
  calls: number;
  callsPerS: number;
  /** Reply records west produced during the window (message + end marker per call). */
  replyRecords: number;
  /** Reply records all instances fetched for them. */
  recordsFetched: number;
  /** recordsFetched ÷ replyRecords. */
  amplification: number | null;
}

export interface WorkersPoint {
  workers: number;
  /** Median round. */
  callsPerS: number;
  roundsCallsPerS: number[];
  failed: number;
  /** Share of the machine's CPU time idle during the measured windows (0–1). */
  idleShare: number | null;
}

export interface ScaleOutResults {
  replyPartitions: number;
  concurrency: number;
  durationMs: number;
  replyRead: ReplyReadPoint[];
  workers: WorkersPoint[];
  /** Median calls/s of 2 workers ÷ of 1 worker. */
  workers2Speedup: number | null;
  /** Workers on cores 0–1, broker and echo upstream on the others (needs 4 cores or more). */
  pinned: boolean;
  /** 1-, 5- and 15-minute load averages before and after the phase. */
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  caveat: string;
}

export interface ScaleOutContext {
  echoPort: number;
  /** The echo upstream's process, pinned away from the workers' cores where there are enough. */
  echoPid: number | undefined;
  /** One gRPC frame of a 100-byte EchoRequest, for h2load. */
  bodyFile: string;
  payloadBytes: number;
  smoke: boolean;
  durationMs: number;
  warmupMs: number;
  rounds: number;
  verbose: boolean;
  log(line: string): void;
  problems: string[];
}

const concurrency = 64;

/** Runs the phase; figures that could not be measured are left out and listed as problems. */
export async function measureScaleOut(ctx: ScaleOutContext): Promise<ScaleOutResults> {
  const loadAverageBefore = os.loadavg().map((v) => round(v, 2));
  const sizes = ctx.smoke ? [2] : [1, 2, 4, 8];
  const modes: ("all" | "group")[] = ctx.smoke ? ["group"] : ["all", "group"];
  const cores = os.cpus().length;
  const pinned = cores >= 4;
  const broker = spawnChild<{ bootstrap: string }>("scale-broker", "processes/broker.ts", [
    "--partitions",
    String(replyPartitions),
    "--topics",
    [...Object.values(scaleOutTopics), ...Object.values(workersTopics)].join(","),
  ]);
  const results: ScaleOutResults = {
    replyPartitions,
    concurrency,
    durationMs: ctx.durationMs,
    replyRead: [],
    workers: [],
    workers2Speedup: null,
    pinned,
    loadAverageBefore,
    loadAverageAfter: [],
    caveat: pinned
      ? `workers on cores 0-1, broker and echo upstream on cores 2-${cores - 1}`
      : `${cores} cores: broker, echo upstream and h2load share them with the workers (no core left to pin them on)`,
  };
  let cluster: KafkaCluster | undefined;
  try {
    const { bootstrap } = await broker.ready;
    if (pinned) {
      for (const pid of [broker.pid, ctx.echoPid]) {
        if (pid !== undefined) await pin(pid, `2-${cores - 1}`);
      }
    }
    cluster = new KafkaCluster(createKafka({ servers: [bootstrap] }, "bench-scale").wire);
    const replyRecordsNow = endOffsets(cluster);
    const west = spawnChild<object>("scale-west", "processes/gateway.ts", [
      "--role",
      "west",
      "--bootstrap",
      bootstrap,
      "--echo-port",
      String(ctx.echoPort),
      "--request-topic",
      scaleOutTopics.requestTopic,
      "--reply-topic",
      scaleOutTopics.replyTopic,
    ]);
    try {
      await west.ready;
      for (const mode of modes) {
        for (const instances of sizes) {
          const point = await measureReplyRead(ctx, bootstrap, mode, instances, replyRecordsNow);
          if (point) {
            results.replyRead.push(point);
            ctx.log(
              `scale-out ${mode} ×${instances}: ${point.recordsFetched} fetched / ${point.replyRecords} produced = ${point.amplification ?? "n/a"} (${point.callsPerS} calls/s)`,
            );
          }
        }
      }
    } finally {
      await west.stop(3_000);
    }
    results.workers = await measureWorkers(ctx, bootstrap, pinned);
    const [one, two] = [1, 2].map((n) => results.workers.find((w) => w.workers === n));
    if (one && two && one.callsPerS > 0) {
      results.workers2Speedup = round(two.callsPerS / one.callsPerS, 3);
    }
  } catch (err) {
    ctx.problems.push(`scale-out: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    cluster?.close();
    await broker.stop(3_000);
  }
  results.loadAverageAfter = os.loadavg().map((v) => round(v, 2));
  return results;
}

/** Moves a running process (every thread) to `cores`. */
function pin(pid: number, cores: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("taskset", ["-a", "-cp", cores, String(pid)], (err) =>
      err ? reject(new Error(`taskset: ${err.message}`)) : resolve(),
    );
  });
}

/** Reply records on the reply topic so far (the sum of its partitions' end offsets). */
function endOffsets(cluster: KafkaCluster): () => Promise<number> {
  const partitions = Array.from({ length: replyPartitions }, (_, i) => i);
  return async () =>
    (await cluster.listOffsets(scaleOutTopics.replyTopic, partitions, -1)).reduce(
      (sum, o) => sum + o.offset,
      0,
    );
}

interface NorthsStats {
  recordsRead: number;
  settled: boolean;
}

async function measureReplyRead(
  ctx: ScaleOutContext,
  bootstrap: string,
  mode: "all" | "group",
  instances: number,
  replyRecordsNow: () => Promise<number>,
): Promise<ReplyReadPoint | undefined> {
  const norths = spawnChild<{ ports: number[] }>(
    `norths-${mode}-${instances}`,
    "processes/norths.ts",
    [
      "--count",
      String(instances),
      "--mode",
      mode,
      "--bootstrap",
      bootstrap,
      "--request-topic",
      scaleOutTopics.requestTopic,
      "--reply-topic",
      scaleOutTopics.replyTopic,
    ],
    { verbose: ctx.verbose, readyTimeoutMs: 60_000 },
  );
  try {
    const { ports } = await norths.ready;
    const stats = () => norths.request<NorthsStats>("stats");
    // The group settles (and partitions given away at each join are let go) before measuring.
    await until(async () => (await stats()).settled, 30_000, `${instances} instances to settle`);
    const fetched0 = (await stats()).recordsRead;
    const produced0 = await replyRecordsNow();
    const perInstance = Math.max(1, Math.round(concurrency / instances));
    const runs = await Promise.all(
      ports.map((port) =>
        runH2load({
          url: `http://127.0.0.1:${port}/grpc.examples.echo.Echo/UnaryEcho`,
          bodyFile: ctx.bodyFile,
          concurrency: perInstance,
          connections: Math.min(perInstance, 4),
          durationMs: ctx.durationMs,
          responseBytes: 5 + ctx.payloadBytes,
        }),
      ),
    );
    // Replies to the calls still open when the window closed arrive a moment later.
    let last = { fetched: -1, produced: -1 };
    await until(
      async () => {
        const now = { fetched: (await stats()).recordsRead, produced: await replyRecordsNow() };
        const steady = now.fetched === last.fetched && now.produced === last.produced;
        last = now;
        return steady;
      },
      15_000,
      "reply reads to settle",
      300,
    );
    const calls = runs.reduce((sum, r) => sum + r.calls, 0);
    const replyRecords = last.produced - produced0;
    const recordsFetched = last.fetched - fetched0;
    const failed = runs.reduce((sum, r) => sum + r.failed, 0);
    if (failed > 0) ctx.problems.push(`scale-out ${mode} ×${instances}: ${failed} calls failed`);
    return {
      instances,
      mode,
      calls,
      callsPerS: round((calls / ctx.durationMs) * 1000, 1),
      replyRecords,
      recordsFetched,
      amplification: replyRecords > 0 ? round(recordsFetched / replyRecords, 3) : null,
    };
  } catch (err) {
    ctx.problems.push(
      `scale-out ${mode} ×${instances}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return undefined;
  } finally {
    await norths.stop(3_000);
  }
}

async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The example's zilla.yaml on the workers' topics, without per-call logs, in a temp dir. */
function workersConfig(dir: string): string {
  cpSync(sourceBenchPath("../examples/grpc.kafka.proxy"), dir, { recursive: true });
  const path = join(dir, "zilla.yaml");
  const text = readFileSync(path, "utf8")
    .replaceAll("echo-requests", workersTopics.requestTopic)
    .replaceAll("echo-responses", workersTopics.replyTopic)
    // The stdout exporter logs every call at info: the bench measures calls, not logging.
    .replace(/\ntelemetry:[\s\S]*$/, "\n");
  writeFileSync(path, text);
  return path;
}

/** The CLI as this harness runs: sources under Bun, dist/src/cli.js when compiled. */
function cliPath(): string {
  const compiled = import.meta.url.endsWith(".js");
  return fileURLToPath(new URL(`../../src/cli.${compiled ? "js" : "ts"}`, import.meta.url));
}

interface RunningGateway {
  port: number;
  stop(): Promise<void>;
}

/** `gateway start --workers N` as a user runs it; resolves once its "gateway ready" line is out. */
async function startWorkers(
  ctx: ScaleOutContext,
  config: string,
  bootstrap: string,
  workers: number,
  pinned: boolean,
): Promise<RunningGateway> {
  // Pinned from its start, so the workers it forks inherit the cores.
  const command = pinned ? ["taskset", "-c", "0,1", process.execPath] : [process.execPath];
  const child: ChildProcess = spawn(
    command[0] as string,
    [
      ...command.slice(1),
      cliPath(),
      "start",
      "--config",
      config,
      "--kafka-servers",
      bootstrap,
      "--ephemeral-ports",
      "--ops-port",
      "off",
      "--workers",
      String(workers),
    ],
    {
      env: {
        ...process.env,
        KEYSTORE_PASSWORD: "zilla-example",
        ECHO_SERVER_HOST: "127.0.0.1",
        ECHO_SERVER_PORT: String(ctx.echoPort),
      },
      stdio: ["ignore", "pipe", ctx.verbose ? "inherit" : "ignore"],
      detached: true,
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      // The whole group: the parent and its workers.
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, 15_000);
    await exited;
    clearTimeout(timer);
  };
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`${workers} workers not ready in 60 s`)),
      60_000,
    );
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      out += chunk;
      const line = out.split("\n").find((l) => l.includes('"msg":"gateway ready"'));
      if (!line) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { north: number[][] }).north[0]?.[0] ?? 0);
      // Keep draining stdout so the gateway never blocks on a full pipe.
      child.stdout?.removeAllListeners("data");
      child.stdout?.resume();
    });
    child.once("exit", (code) => reject(new Error(`${workers} workers exited (${code})`)));
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { port, stop };
}

/** Idle and total CPU ticks of the machine so far (/proc/stat). */
function machineTicks(): { idle: number; total: number } | undefined {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return {
      idle: (fields[3] ?? 0) + (fields[4] ?? 0),
      total: fields.reduce((a, b) => a + b, 0),
    };
  } catch {
    return undefined;
  }
}

async function measureWorkers(
  ctx: ScaleOutContext,
  bootstrap: string,
  pinned: boolean,
): Promise<WorkersPoint[]> {
  const dir = mkdtempSync(join(os.tmpdir(), "bench-workers-"));
  const config = workersConfig(dir);
  const rounds: Record<number, { callsPerS: number; failed: number; idle: number | null }[]> = {
    1: [],
    2: [],
  };
  try {
    for (let round = 0; round < ctx.rounds; round++) {
      // Interleaved, so drift on the shared machine hits both alike.
      for (const workers of [1, 2]) {
        let gateway: RunningGateway | undefined;
        try {
          gateway = await startWorkers(ctx, config, bootstrap, workers, pinned);
          const run = {
            url: `http://127.0.0.1:${gateway.port}/grpc.examples.echo.Echo/UnaryEcho`,
            bodyFile: ctx.bodyFile,
            concurrency,
            // Enough connections that the parent's turn-taking splits them evenly.
            connections: 8,
            responseBytes: 5 + ctx.payloadBytes,
          };
          if (ctx.warmupMs > 0) await runH2load({ ...run, durationMs: ctx.warmupMs });
          const before = machineTicks();
          const result = await runH2load({ ...run, durationMs: ctx.durationMs });
          const after = machineTicks();
          const idle =
            before && after && after.total > before.total
              ? (after.idle - before.idle) / (after.total - before.total)
              : null;
          const callsPerS = (result.calls / (result.windowMs || ctx.durationMs)) * 1000;
          rounds[workers]?.push({ callsPerS, failed: result.failed, idle });
          ctx.log(`scale-out workers=${workers}: ${Math.round(callsPerS)} calls/s`);
        } catch (err) {
          ctx.problems.push(
            `scale-out workers=${workers}: ${err instanceof Error ? err.message : String(err)}`,
          );
        } finally {
          await gateway?.stop();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [1, 2].flatMap((workers) => {
    const list = rounds[workers] ?? [];
    if (list.length === 0) return [];
    const sorted = [...list].sort((a, b) => a.callsPerS - b.callsPerS);
    const median = sorted[Math.floor(sorted.length / 2)] as (typeof list)[number];
    const idles = list.map((r) => r.idle).filter((v): v is number => v !== null);
    return [
      {
        workers,
        callsPerS: round(median.callsPerS, 1),
        roundsCallsPerS: list.map((r) => round(r.callsPerS, 1)),
        failed: list.reduce((sum, r) => sum + r.failed, 0),
        idleShare: idles.length ? round(idles.reduce((a, b) => a + b, 0) / idles.length, 3) : null,
      },
    ];
  });
}
