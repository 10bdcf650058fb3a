/**
 * The benchmark harness (`npm run bench`, `npm run bench -- --smoke`): starts the embedded
 * broker, the echo upstream, the gateway, the floor's kafkajs requester and responder and
 * the load generators as separate processes, measures every scenario at each concurrency
 * against the gateway, the floor (the same round trip with plain kafkajs) and direct (the
 * echo upstream without Kafka), then the gateway's memory per pending call; prints the
 * tables and writes bench/results/<date>.json, <date>.svg and latest.svg.
 *
 * Options: --smoke, --duration-ms N, --warmup-ms N, --concurrency 1,16,..., --scenarios
 * id,... (scale-out names the scale-out phase), --partitions N, --pending-calls N,
 * --no-h2load, --verbose.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { defaultKafkaGrpcOptions } from "../src/config/types.ts";
import { renderChart } from "./lib/chart.ts";
import { type BenchChild, sourceBenchPath, spawnChild } from "./lib/child.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "./lib/echo-payload.ts";
import { h2loadVersion, runH2load } from "./lib/h2load.ts";
import type { ProcessStats } from "./lib/process-stats.ts";
import { renderMarkdown, renderText } from "./lib/report.ts";
import type {
  BenchResults,
  GatewayFigures,
  PointFigures,
  ScenarioPoint,
  ScenarioResult,
  TargetCheck,
  TargetName,
} from "./lib/results.ts";
import { measureScaleOut, type ScaleOutResults } from "./lib/scale-out.ts";
import {
  type LoadRunRequest,
  type LoadRunResult,
  type Scenario,
  scenarios,
} from "./lib/scenarios.ts";
import { round, summarizeLatencies } from "./lib/stats.ts";

interface Options {
  smoke: boolean;
  concurrencies: number[];
  warmupMs: number;
  durationMs: number;
  partitions: number;
  pendingCalls: number;
  pendingDelayMs: number;
  scenarioIds: string[] | undefined;
  /** The scale-out phase (many norths on one reply topic, workers): unless --scenarios leaves it out. */
  scaleOut: boolean;
  useH2load: boolean;
  /** Rounds of each target point (unary 100 B at 1, 64, 256); the median round counts. */
  targetRounds: number;
  /** split: north and west in separate processes (as deployed, and as the floor runs). */
  deployment: "split" | "single";
  verbose: boolean;
  /** Most connections a load generator opens for one point. */
  connectionsMax: number;
  /** Connect client processes for streaming (and unary without h2load). */
  loadProcesses: number;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const numberOf = (name: string, fallback: number) => {
    const text = value(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} wants a number, got ${text}`);
    return n;
  };
  const smoke = argv.includes("--smoke");
  const concurrencies = (value("concurrency") ?? (smoke ? "1,16" : "1,16,64,256"))
    .split(",")
    .map(Number);
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new Error("--concurrency wants positive integers, e.g. 1,16,64");
  }
  return {
    smoke,
    concurrencies,
    warmupMs: numberOf("warmup-ms", smoke ? 150 : 1_000),
    durationMs: numberOf("duration-ms", smoke ? 400 : 5_000),
    partitions: numberOf("partitions", 3),
    pendingCalls: numberOf("pending-calls", smoke ? 1_000 : 10_000),
    pendingDelayMs: smoke ? 10_000 : 20_000,
    scenarioIds: value("scenarios")?.split(","),
    scaleOut: value("scenarios")?.split(",").includes("scale-out") ?? true,
    useH2load: !argv.includes("--no-h2load"),
    deployment: value("deployment") === "single" ? ("single" as const) : ("split" as const),
    targetRounds: numberOf("target-rounds", smoke ? 1 : 3),
    verbose: argv.includes("--verbose"),
    connectionsMax: 4,
    loadProcesses: Math.max(1, Math.min(2, os.cpus().length)),
  };
}

const topics = {
  gatewayRequests: "echo-requests",
  gatewayReplies: "echo-responses",
  floorRequests: "bench-floor-requests",
  floorReplies: "bench-floor-responses",
};

type EchoStats = ProcessStats & { calls: Record<string, number> };
type GatewayReady = { port: number; readyInProcessMs: number };

/** The points the targets are read from (unary 100 B at 1, 64 and 256 concurrent calls). */
function isTargetPoint(scenarioId: string, concurrency: number): boolean {
  return scenarioId === "unary-100b" && [1, 64, 256].includes(concurrency);
}

/** The round with the median calls/s (its figures), with every round's calls/s attached. */
function medianRound(rounds: PointFigures[]): PointFigures | undefined {
  if (rounds.length <= 1) return rounds[0];
  const sorted = [...rounds].sort((a, b) => a.callsPerS - b.callsPerS);
  const median = sorted[Math.floor(sorted.length / 2)] as PointFigures;
  return { ...median, roundsCallsPerS: rounds.map((r) => r.callsPerS) };
}

function runtimeName(): string {
  const bun = (process.versions as { bun?: string }).bun;
  return bun ? `bun ${bun}` : `node ${process.versions.node}`;
}

const runStarted = performance.now();

/** Progress on stderr, stamped with seconds since the run started. */
function log(line: string): void {
  const seconds = ((performance.now() - runStarted) / 1000).toFixed(1).padStart(5);
  process.stderr.write(`[${seconds} s] ${line}\n`);
}

/** Every load run result of one point merged into its figures. */
function figuresOf(
  results: LoadRunResult[],
  durationMs: number,
  loadGenerator: string,
): PointFigures {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  let failed = 0;
  let callsPerS = 0;
  for (const r of results) {
    calls += r.calls;
    // Each process's own window (a window with no finished call gets extended).
    callsPerS += r.calls / ((r.windowMs || durationMs) / 1000);
    failed += r.failed;
    for (const v of r.latenciesMs) latencies.push(v);
    for (const [text, n] of Object.entries(r.errors)) errors[text] = (errors[text] ?? 0) + n;
  }
  return {
    calls,
    failed,
    callsPerS: round(callsPerS, 1),
    ...summarizeLatencies(latencies),
    errors,
    loadGenerator,
  };
}

/** `total` spread as evenly as possible over `parts`. */
function spread(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

class Harness {
  readonly options: Options;
  readonly problems: string[] = [];
  broker?: BenchChild<{ bootstrap: string }>;
  echo?: BenchChild<{ port: number }>;
  gateway?: BenchChild<GatewayReady>;
  bootstrap = "";
  echoPort = 0;
  responder?: BenchChild<object>;
  requester?: BenchChild<object>;
  pending?: BenchChild<object>;
  loadClients: BenchChild<object>[] = [];
  h2load: string | undefined;
  echoUrl = "";
  gatewayUrl = "";
  bodyFiles = new Map<number, string>();

  constructor(options: Options) {
    this.options = options;
  }

  private spawn<R extends object>(name: string, script: string, args: string[]): BenchChild<R> {
    return spawnChild<R>(name, script, args, { verbose: this.options.verbose });
  }

  /**
   * Broker, echo and load clients must start; the gateway and the floor are recorded as
   * problems when they do not. Everything but the gateway starts at once; the gateway
   * starts alone afterwards, so its start-to-ready time is not shared with other start-ups.
   */
  async start(): Promise<void> {
    this.h2load = this.options.useH2load ? await h2loadVersion() : undefined;
    this.broker = this.spawn("broker", "processes/broker.ts", [
      "--partitions",
      String(this.options.partitions),
      "--topics",
      Object.values(topics).join(","),
    ]);
    this.echo = this.spawn("echo", "processes/echo.ts", []);
    this.loadClients = Array.from({ length: this.options.loadProcesses }, (_, i) =>
      this.spawn(`load-${i + 1}`, "processes/load-client.ts", []),
    );
    this.pending = this.spawn("pending-client", "processes/pending-client.ts", []);
    const { bootstrap } = await this.broker.ready;
    const floor = this.startFloor(bootstrap);
    const { port: echoPort } = await this.echo.ready;
    await Promise.all([...this.loadClients.map((c) => c.ready), this.pending.ready, floor]);
    this.echoUrl = `http://127.0.0.1:${echoPort}`;
    log(
      `broker ${bootstrap}, echo ${this.echoUrl}, floor and ${this.loadClients.length} load clients ready`,
    );

    this.bootstrap = bootstrap;
    this.echoPort = echoPort;
    await this.startGateway();

    for (const scenario of scenarios) {
      if (scenario.kind !== "unary" || this.bodyFiles.has(scenario.payloadBytes)) continue;
      const file = `${os.tmpdir()}/bench-grpc-body-${process.pid}-${scenario.payloadBytes}`;
      await writeFile(file, grpcFrame(echoRequestBytes(echoTextOfSize(scenario.payloadBytes))));
      this.bodyFiles.set(scenario.payloadBytes, file);
    }
  }

  /**
   * Spawns a gateway and waits for its ready line; on failure records a problem and leaves
   * `gateway` unset. A running gateway is stopped first (the pending-call test wants a fresh
   * process, whose idle RSS has not been grown by the load before).
   */
  async startGateway(): Promise<void> {
    if (this.gateway) {
      await this.gateway.stop(5_000);
      this.gateway = undefined;
    }
    const gateway = this.spawn<GatewayReady>("gateway", "processes/gateway.ts", [
      "--bootstrap",
      this.bootstrap,
      "--echo-port",
      String(this.echoPort),
      "--request-topic",
      topics.gatewayRequests,
      "--reply-topic",
      topics.gatewayReplies,
      "--deployment",
      this.options.deployment,
    ]);
    try {
      const ready = await gateway.ready;
      this.gateway = gateway;
      this.gatewayUrl = `http://127.0.0.1:${ready.port}`;
      log(`gateway ${this.gatewayUrl}, ready ${gateway.spawnToReadyMs.toFixed(0)} ms after spawn`);
    } catch (err) {
      this.problems.push(`gateway did not start: ${err instanceof Error ? err.message : err}`);
      await gateway.stop(1_000);
    }
  }

  /** Responder first (its group must exist), then the requester, which waits for a round trip. */
  private async startFloor(bootstrap: string): Promise<void> {
    const responder = this.spawn("floor-responder", "processes/floor-responder.ts", [
      "--bootstrap",
      bootstrap,
      "--request-topic",
      topics.floorRequests,
      "--partitions",
      String(this.options.partitions),
    ]);
    try {
      await responder.ready;
      this.responder = responder;
      const requester = this.spawn("floor-requester", "processes/floor-requester.ts", [
        "--bootstrap",
        bootstrap,
        "--request-topic",
        topics.floorRequests,
        "--reply-topic",
        topics.floorReplies,
      ]);
      this.requester = requester;
      await requester.ready;
    } catch (err) {
      this.requester = undefined;
      this.problems.push(`floor did not start: ${err instanceof Error ? err.message : err}`);
    }
  }

  /** Stops the gateway, the floor and the load clients: the scale-out phase runs its own. */
  async quiet(): Promise<void> {
    const children = [this.pending, ...this.loadClients, this.requester, this.responder];
    await Promise.allSettled([...children.map((c) => c?.stop(3_000)), this.gateway?.stop(1_500)]);
    this.pending = undefined;
    this.loadClients = [];
    this.requester = undefined;
    this.responder = undefined;
    this.gateway = undefined;
  }

  async stop(): Promise<void> {
    const children = [
      this.pending,
      ...this.loadClients,
      this.requester,
      this.responder,
      this.gateway,
      this.echo,
    ];
    await Promise.allSettled(
      children.map(async (c) => {
        if (!c) return;
        const t0 = performance.now();
        // The last gateway still has west's upstream calls held by the delay hook; its
        // graceful close would wait for them, and nothing is measured any more.
        await c.stop(c === this.gateway ? 1_500 : 3_000);
        if (this.options.verbose)
          log(`${c.name} stopped in ${(performance.now() - t0).toFixed(0)} ms`);
      }),
    );
    await this.broker?.stop(3_000);
    await Promise.all([...this.bodyFiles.values()].map((f) => rm(f, { force: true })));
  }

  private async echoCalls(method: string): Promise<number> {
    const stats = await this.echo?.request<EchoStats>("stats");
    return stats?.calls[method] ?? 0;
  }

  /** One point against the gateway or direct: h2load for unary when installed, else Connect clients. */
  private async measureGrpc(
    target: "gateway" | "direct",
    scenario: Scenario,
    concurrency: number,
  ): Promise<PointFigures> {
    const url = target === "gateway" ? this.gatewayUrl : this.echoUrl;
    const { warmupMs, durationMs, connectionsMax } = this.options;
    const connections = Math.min(concurrency, connectionsMax);
    const cpuNow = () => this.cpuSnapshot(target === "gateway" ? [this.gateway] : []);
    const bodyFile = this.bodyFiles.get(scenario.payloadBytes);
    if (scenario.kind === "unary" && this.h2load && bodyFile) {
      const run = {
        url: `${url}/grpc.examples.echo.Echo/UnaryEcho`,
        bodyFile,
        concurrency,
        connections,
        responseBytes: 5 + scenario.payloadBytes,
      };
      const upstreamBefore = await this.echoCalls("UnaryEcho");
      if (warmupMs > 0) await runH2load({ ...run, durationMs: warmupMs });
      const cpu0 = await cpuNow();
      const result = await runH2load({
        ...run,
        durationMs,
        logFile: `${os.tmpdir()}/bench-h2load-${process.pid}.log`,
      });
      const cpu1 = await cpuNow();
      const figures = figuresOf([result], durationMs, this.h2load);
      figures.upstreamCalls = (await this.echoCalls("UnaryEcho")) - upstreamBefore;
      if (figures.upstreamCalls < figures.calls) {
        figures.errors["fewer upstream calls than OK replies"] =
          figures.calls - figures.upstreamCalls;
      }
      return withCpu(figures, cpu0, cpu1);
    }
    const processes = this.loadClients.slice(0, Math.min(this.loadClients.length, concurrency));
    const perProcess = spread(concurrency, processes.length);
    const connectionsPer = spread(Math.max(connections, processes.length), processes.length);
    const run = Promise.all(
      processes.map((p, i) =>
        p.request<LoadRunResult>("run", {
          url,
          request: {
            scenario,
            concurrency: perProcess[i] ?? 1,
            connections: connectionsPer[i] ?? 1,
            warmupMs,
            durationMs,
          } satisfies LoadRunRequest,
        }),
      ),
    );
    // One run, warm-up then measured window, so the window sees calls in steady state (a
    // fresh run would start with every slow bidi call in flight at once).
    const cpu0 = await sleep(warmupMs).then(cpuNow);
    const results = await run;
    const cpu1 = await cpuNow();
    const generator = `Connect gRPC client (${processes.length} process${processes.length > 1 ? "es" : ""})`;
    return withCpu(figuresOf(results, durationMs, generator), cpu0, cpu1);
  }

  /**
   * CPU used so far by `own` (the gateway, or the floor's two processes: undefined when any
   * is missing), the broker and the echo upstream, microseconds.
   */
  private async cpuSnapshot(own: (BenchChild<object> | undefined)[]): Promise<CpuSnapshot> {
    const cpuOf = async (child: BenchChild<object> | undefined) =>
      child ? (await child.request<ProcessStats>("stats")).cpuUs : undefined;
    const [owned, broker, echo] = await Promise.all([
      Promise.all(own.map(cpuOf)),
      cpuOf(this.broker),
      cpuOf(this.echo),
    ]);
    const ownUs =
      owned.length > 0 && owned.every((us) => us !== undefined)
        ? owned.reduce<number>((sum, us) => sum + (us ?? 0), 0)
        : undefined;
    return { own: ownUs, broker, echo };
  }

  private async measureFloor(scenario: Scenario, concurrency: number): Promise<PointFigures> {
    const requester = this.requester;
    if (!requester) throw new Error("floor is not running");
    const { warmupMs, durationMs } = this.options;
    const run = requester.request<LoadRunResult>("run", {
      request: { scenario, concurrency, connections: 1, warmupMs, durationMs },
    });
    const own = [this.requester, this.responder];
    const cpu0 = await sleep(warmupMs).then(() => this.cpuSnapshot(own));
    const result = await run;
    const cpu1 = await this.cpuSnapshot(own);
    return withCpu(figuresOf([result], durationMs, "kafkajs requester (1 process)"), cpu0, cpu1);
  }

  async measure(
    target: TargetName,
    scenario: Scenario,
    concurrency: number,
  ): Promise<PointFigures | undefined> {
    if (target === "gateway" && !this.gateway) return undefined;
    if (target === "floor" && !this.requester) return undefined;
    try {
      const figures =
        target === "floor"
          ? await this.measureFloor(scenario, concurrency)
          : await this.measureGrpc(target, scenario, concurrency);
      if (figures.calls === 0) {
        this.problems.push(
          `${scenario.id} c=${concurrency} ${target}: no call succeeded (${JSON.stringify(figures.errors)})`,
        );
      }
      return figures;
    } catch (err) {
      this.problems.push(
        `${scenario.id} c=${concurrency} ${target}: ${err instanceof Error ? err.message : err}`,
      );
      return undefined;
    }
  }

  /**
   * Memory per pending call: RSS (and JS heap) with many calls held by the upstream's delay
   * hook, against idle (both after a GC). Measured on the echo upstream first (direct: what
   * the runtime's HTTP/2 server and connect-node alone cost per open call), then on the
   * gateway.
   */
  async measurePendingMemory(figures: GatewayFigures): Promise<void> {
    const { gateway, pending } = this;
    if (!gateway || !pending) return;
    const calls = this.options.pendingCalls;
    const message = echoTextOfSize(100, `delay:${this.options.pendingDelayMs}:`);
    /** Opens the calls at `url`, samples `process` once `heldCount` reaches `expected`. */
    const holdAt = async (
      process: BenchChild<object>,
      url: string,
      heldCount: () => Promise<number>,
      expected: number,
    ) => {
      const idle = await process.request<ProcessStats>("stats", { gc: true });
      const before = await heldCount();
      const opened = Date.now();
      await pending.request("open", { url, calls, message }, 60_000);
      // Sample once everything expected is held (and a second has passed), at most after a
      // third of the upstream's delay.
      const waitFrom = Date.now();
      let held = 0;
      for (;;) {
        await sleep(250);
        held = (await heldCount()) - before;
        const waited = Date.now() - waitFrom;
        if (held >= expected && waited >= 1_000) break;
        if (waited >= this.options.pendingDelayMs / 3) break;
      }
      const sample = await process.request<ProcessStats>("stats", { gc: true });
      const status = await pending.request<{ responded: number }>("status");
      await pending.request("close");
      if (Date.now() - opened >= this.options.pendingDelayMs) {
        this.problems.push(
          `pending-call test (${process.name}): the delay ran out before sampling`,
        );
      }
      return {
        idle,
        sample,
        held,
        answeredEarly: status.responded,
        rssPerCall: round((sample.rssBytes - idle.rssBytes) / calls, 0),
      };
    };
    try {
      // West takes at most maxConcurrentCalls to the upstream; the rest wait in Kafka, and
      // every call waits at north.
      const viaGateway = await holdAt(
        gateway,
        this.gatewayUrl,
        () => this.echoCalls("UnaryEcho"),
        Math.min(calls, defaultKafkaGrpcOptions().maxConcurrentCalls),
      );
      if (viaGateway.held === 0) {
        // Nothing got through: the figure would measure failed calls, not pending ones.
        this.problems.push("pending-call test: no call reached the upstream through the gateway");
      } else {
        figures.idleRssBytes = viaGateway.idle.rssBytes;
        figures.pendingRssBytes = viaGateway.sample.rssBytes;
        figures.pendingAtUpstream = viaGateway.held;
        figures.pendingAnsweredEarly = viaGateway.answeredEarly;
        figures.memoryPerPendingCallBytes = viaGateway.rssPerCall;
        figures.heapPerPendingCallBytes = round(
          (viaGateway.sample.heapUsedBytes - viaGateway.idle.heapUsedBytes) / calls,
          0,
        );
      }
      // References, each a fresh process too: the echo upstream (connect-node) called
      // directly, and a bare HTTP/2 server that only holds the streams.
      const echo = this.spawn<{ port: number }>("echo-fresh", "processes/echo.ts", []);
      const holder = this.spawn<{ port: number }>(
        "stream-holder",
        "processes/stream-holder.ts",
        [],
      );
      try {
        const [{ port: echoPort }, { port: holderPort }] = await Promise.all([
          echo.ready,
          holder.ready,
        ]);
        const direct = await holdAt(
          echo,
          `http://127.0.0.1:${echoPort}`,
          async () => (await echo.request<EchoStats>("stats")).calls.UnaryEcho ?? 0,
          calls,
        );
        figures.directMemoryPerPendingCallBytes = direct.rssPerCall;
        const bare = await holdAt(
          holder,
          `http://127.0.0.1:${holderPort}`,
          async () => (await holder.request<{ held: number }>("stats")).held,
          calls,
        );
        figures.http2StreamBytes = bare.rssPerCall;
      } finally {
        await Promise.all([echo.stop(1_500), holder.stop(1_500)]);
      }
    } catch (err) {
      this.problems.push(`pending-call test: ${err instanceof Error ? err.message : err}`);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type CpuSnapshot = { own?: number; broker?: number; echo?: number };

/** CPU seconds per 1,000 OK calls of the gateway or floor, the broker and the echo upstream. */
function withCpu(figures: PointFigures, cpu0: CpuSnapshot, cpu1: CpuSnapshot): PointFigures {
  const per1k = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && figures.calls > 0
      ? round(((b - a) / 1e6 / figures.calls) * 1000, 4)
      : undefined;
  const own = per1k(cpu0.own, cpu1.own);
  const broker = per1k(cpu0.broker, cpu1.broker);
  const echo = per1k(cpu0.echo, cpu1.echo);
  if (own !== undefined) figures.cpuSecondsPer1kCalls = own;
  if (broker !== undefined) figures.brokerCpuSecondsPer1kCalls = broker;
  if (echo !== undefined && echo > 0) figures.upstreamCpuSecondsPer1kCalls = echo;
  return figures;
}

function pointSummary(figures: PointFigures | undefined): string {
  if (!figures) return "n/a";
  const failed = figures.failed ? ` errors ${figures.failed}` : "";
  return `${Math.round(figures.callsPerS)}/s p50 ${figures.p50Ms}ms p99 ${figures.p99Ms}ms${failed}`;
}

function ratios(point: ScenarioPoint): void {
  const { gateway, floor } = point;
  if (!gateway || !floor || gateway.calls === 0 || floor.calls === 0) return;
  point.gatewayToFloorCallsRatio = round(gateway.callsPerS / floor.callsPerS, 3);
  point.gatewayP50AddedMs = round(gateway.p50Ms - floor.p50Ms, 3);
  point.gatewayToFloorP99Ratio = round(gateway.p99Ms / floor.p99Ms, 3);
}

function targetChecks(results: BenchResults): TargetCheck[] {
  const g = results.gateway;
  const fmt = (v: number | null, f: (v: number) => string) => (v === null ? "n/a" : f(v));
  const totalFailed =
    results.failedCalls.gateway + results.failedCalls.floor + results.failedCalls.direct;
  const anyGateway = results.scenarios.some((s) => s.points.some((p) => p.gateway));
  const shared = (results.scaleOut?.replyRead ?? []).filter((p) => p.mode === "group");
  const worstAmplification = shared.some((p) => p.amplification !== null)
    ? Math.max(...shared.map((p) => p.amplification ?? 0))
    : null;
  return [
    {
      name: "unary 100 B calls/s at c=64 vs floor",
      goal: "≥ 0.9× floor",
      value: fmt(results.unaryC64RatioToFloor, (v) => `${v.toFixed(2)}×`),
      pass: results.unaryC64RatioToFloor === null ? null : results.unaryC64RatioToFloor >= 0.9,
    },
    {
      name: "unary 100 B p50 at c=1 over floor",
      goal: "≤ floor + 1 ms",
      value: fmt(results.unaryC1P50AddedMs, (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} ms`),
      pass: results.unaryC1P50AddedMs === null ? null : results.unaryC1P50AddedMs <= 1,
    },
    {
      name: "unary 100 B p99 at c=256 vs floor p99",
      goal: "≤ 2× floor",
      value: fmt(results.unaryC256P99RatioToFloor, (v) => `${v.toFixed(2)}×`),
      pass:
        results.unaryC256P99RatioToFloor === null ? null : results.unaryC256P99RatioToFloor <= 2,
    },
    {
      name: "failed calls (gateway / floor / direct)",
      goal: "0",
      value: `${results.failedCalls.gateway} / ${results.failedCalls.floor} / ${results.failedCalls.direct}`,
      pass: anyGateway ? totalFailed === 0 : null,
    },
    {
      name: `memory per pending call (${g.pendingCalls} pending)`,
      goal: "≤ 4 KiB",
      value: fmt(g.memoryPerPendingCallBytes, (v) => `${(v / 1024).toFixed(2)} KiB`),
      pass: g.memoryPerPendingCallBytes === null ? null : g.memoryPerPendingCallBytes <= 4096,
    },
    {
      name: "gateway start to ready",
      goal: "< 1 s",
      value: fmt(g.readyMs, (v) => `${v.toFixed(0)} ms`),
      pass: g.readyMs === null ? null : g.readyMs < 1000,
    },
    {
      name: "reply records fetched per reply produced, 1–8 norths (reply group)",
      goal: "≤ 1.2 at every size",
      value: worstAmplification === null ? "n/a" : `${worstAmplification.toFixed(2)} (worst)`,
      pass: worstAmplification === null ? null : worstAmplification <= 1.2,
    },
    {
      name: `calls/s of 2 workers ÷ 1 worker (${results.machine.cores} cores shared with broker and upstream)`,
      goal: "≥ 1.6×",
      value: fmt(results.workers2Speedup ?? null, (v) => `${v.toFixed(2)}×`),
      pass:
        (results.workers2Speedup ?? null) === null
          ? null
          : (results.workers2Speedup as number) >= 1.6,
    },
  ];
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  const date = new Date().toISOString();
  const selected = scenarios.filter(
    (s) => !options.scenarioIds || options.scenarioIds.includes(s.id),
  );
  const harness = new Harness(options);
  const gatewayFigures: GatewayFigures = {
    readyMs: null,
    readyInProcessMs: null,
    secondReadyMs: null,
    startupRssBytes: null,
    idleRssBytes: null,
    peakRssBytes: null,
    pendingCalls: options.pendingCalls,
    pendingRssBytes: null,
    memoryPerPendingCallBytes: null,
    heapPerPendingCallBytes: null,
    directMemoryPerPendingCallBytes: null,
    http2StreamBytes: null,
    pendingAtUpstream: null,
    pendingAnsweredEarly: null,
    cpuSecondsPer1kCalls: null,
  };
  const scenarioResults: ScenarioResult[] = [];
  let scaleOut: ScaleOutResults | undefined;
  try {
    await harness.start();
    if (harness.gateway) {
      const ready = await harness.gateway.ready;
      gatewayFigures.readyMs = round(harness.gateway.spawnToReadyMs, 1);
      gatewayFigures.readyInProcessMs = round(ready.readyInProcessMs, 1);
      gatewayFigures.startupRssBytes = (
        await harness.gateway.request<ProcessStats>("stats")
      ).rssBytes;
      await harness.gateway.request("reset-peak");
    }
    for (const scenario of selected) {
      const result: ScenarioResult = {
        id: scenario.id,
        title: scenario.title,
        kind: scenario.kind,
        payloadBytes: scenario.payloadBytes,
        points: [],
      };
      for (const concurrency of options.concurrencies) {
        const point: ScenarioPoint = { concurrency };
        // The points the targets are read from get several rounds: on a shared machine one
        // 5 s window of either side can be off by half. Rounds interleave the three sides.
        const rounds = isTargetPoint(scenario.id, concurrency) ? options.targetRounds : 1;
        const measured: Record<"direct" | "floor" | "gateway", PointFigures[]> = {
          direct: [],
          floor: [],
          gateway: [],
        };
        for (let round = 0; round < rounds; round++) {
          // Back to back per point, so drift on the machine hits all three alike.
          for (const target of ["direct", "floor", "gateway"] as const) {
            const figures = await harness.measure(target, scenario, concurrency);
            if (figures) measured[target].push(figures);
          }
        }
        for (const target of ["direct", "floor", "gateway"] as const) {
          const figures = medianRound(measured[target]);
          if (figures) point[target] = figures;
        }
        ratios(point);
        result.points.push(point);
        log(
          `${scenario.id.padEnd(13)} c=${String(concurrency).padEnd(3)}  gateway ${pointSummary(point.gateway)} | floor ${pointSummary(point.floor)} | direct ${pointSummary(point.direct)}`,
        );
      }
      scenarioResults.push(result);
    }
    if (harness.gateway && selected.length > 0) {
      gatewayFigures.peakRssBytes = (
        await harness.gateway.request<ProcessStats>("stats")
      ).peakRssBytes;
      // RSS does not shrink after load, so pending calls in the same process would reuse
      // memory the load left behind: a fresh gateway starts (a second start-to-ready sample).
      await harness.startGateway();
      if (harness.gateway) gatewayFigures.secondReadyMs = round(harness.gateway.spawnToReadyMs, 1);
      log(`holding ${options.pendingCalls} pending calls at a fresh gateway`);
      await harness.measurePendingMemory(gatewayFigures);
      const g = gatewayFigures;
      log(
        g.memoryPerPendingCallBytes === null
          ? "memory per pending call: not measured"
          : `memory per pending call ${g.memoryPerPendingCallBytes} B (${g.pendingAtUpstream} at the upstream)`,
      );
    }
    const bodyFile = harness.bodyFiles.get(100);
    if (options.scaleOut && bodyFile && harness.h2load) {
      await harness.quiet();
      log("scale-out: norths sharing one reply topic, then 1 and 2 workers");
      scaleOut = await measureScaleOut({
        echoPort: harness.echoPort,
        echoPid: harness.echo?.pid,
        bodyFile,
        payloadBytes: 100,
        smoke: options.smoke,
        durationMs: options.durationMs,
        warmupMs: options.warmupMs,
        rounds: options.targetRounds,
        verbose: options.verbose,
        log,
        problems: harness.problems,
      });
    } else if (options.scaleOut) {
      harness.problems.push("scale-out: needs h2load");
    }
  } catch (err) {
    harness.problems.push(err instanceof Error ? err.message : String(err));
  } finally {
    log("stopping");
    await harness.stop();
  }

  const pointAt = (id: string, c: number) =>
    scenarioResults.find((s) => s.id === id)?.points.find((p) => p.concurrency === c);
  const unary64 = pointAt("unary-100b", 64);
  gatewayFigures.cpuSecondsPer1kCalls = unary64?.gateway?.cpuSecondsPer1kCalls ?? null;
  const failedCalls = { gateway: 0, floor: 0, direct: 0 };
  for (const s of scenarioResults) {
    for (const p of s.points) {
      for (const t of ["gateway", "floor", "direct"] as const) failedCalls[t] += p[t]?.failed ?? 0;
    }
  }
  const cpus = os.cpus();
  const results: BenchResults = {
    date,
    command: [
      "npm run bench",
      ...(process.argv.slice(2).length ? ["--", ...process.argv.slice(2)] : []),
    ].join(" "),
    smoke: options.smoke,
    runtime: runtimeName(),
    machine: {
      cores: cpus.length,
      memoryBytes: os.totalmem(),
      cpuModel: cpus[0]?.model.trim() ?? "unknown",
      platform: `${os.platform()} ${os.release()}`,
    },
    loadGenerator: {
      unary: harness.h2load ?? "Connect gRPC client (h2load not installed)",
      streaming: `Connect gRPC client (${options.loadProcesses} processes)`,
      floor: "kafkajs requester + kafkajs responder (1 process each)",
      gateway:
        options.deployment === "split"
          ? "north + west (1 process each)"
          : "north and west in 1 process",
    },
    settings: {
      concurrencies: options.concurrencies,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      partitions: options.partitions,
      connectionsMax: options.connectionsMax,
      loadProcesses: options.loadProcesses,
      targetRounds: options.targetRounds,
    },
    unaryC64RatioToFloor: unary64?.gatewayToFloorCallsRatio ?? null,
    unaryC1P50AddedMs: pointAt("unary-100b", 1)?.gatewayP50AddedMs ?? null,
    unaryC256P99RatioToFloor: pointAt("unary-100b", 256)?.gatewayToFloorP99Ratio ?? null,
    failedCalls,
    gateway: gatewayFigures,
    scenarios: scenarioResults,
    replyReadAmplification8:
      scaleOut?.replyRead.find((p) => p.mode === "group" && p.instances === 8)?.amplification ??
      null,
    workers2Speedup: scaleOut?.workers2Speedup ?? null,
    ...(scaleOut ? { scaleOut } : {}),
    targets: [],
    problems: harness.problems,
    wallSeconds: round((performance.now() - started) / 1000, 1),
  };
  results.targets = targetChecks(results);
  // A smoke run's windows are too short to hold anything to a target: nothing is judged.
  if (options.smoke) for (const target of results.targets) target.pass = null;

  const outDir = sourceBenchPath(options.smoke ? "results/smoke/" : "results/");
  await mkdir(outDir, { recursive: true });
  const stem = `${date.slice(0, 19).replace(/:/g, "-")}Z`;
  const svg = renderChart(results);
  await writeFile(`${outDir}${stem}.json`, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(`${outDir}${stem}.svg`, svg);
  await writeFile(`${outDir}latest.svg`, svg);
  await writeFile(`${outDir}latest.md`, renderMarkdown(results));
  process.stdout.write(`\n${renderText(results)}\n\n`);
  process.stdout.write(
    `wrote ${outDir}${stem}.json, ${stem}.svg, latest.svg, latest.md (${results.wallSeconds} s)\n`,
  );
  return harness.problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
