/**
 * The benchmark harness (`npm run bench`, `npm run bench -- --smoke`): starts the embedded
 * broker, the echo upstream, the gateway, the floors' requesters and responders and the
 * load generators as separate processes, measures every scenario at each concurrency
 * against the gateway, the floor (the same round trip with plain kafkajs), the native floor
 * (the same round trip on the gateway's own Kafka client, no gRPC) and direct (the echo
 * upstream without Kafka), then north's memory per pending call; prints the tables and
 * writes bench/results/<date>.json, <date>.svg and latest.svg.
 *
 * Options: --smoke, --duration-ms N, --warmup-ms N, --settle-ms N, --concurrency 1,16,..., --scenarios
 * id,... (scale-out names the scale-out phase), --partitions N, --pending-calls N,...
 * (--no-pending: none), --no-h2load, --streaming-client raw|connect, --verbose.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { defaultKafkaGrpcOptions } from "../src/config/types.ts";
import { renderChart } from "./lib/chart.ts";
import {
  allocatorPurgeDelay,
  allocatorPurgeHoles,
  allocatorSettleMs,
  type BenchChild,
  sourceBenchPath,
  spawnChild,
} from "./lib/child.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "./lib/echo-payload.ts";
import { h2loadVersion, runH2load } from "./lib/h2load.ts";
import { type MachineCpu, otherCores, readMachineCpu } from "./lib/machine-cpu.ts";
import type { GatewayStats, ProcessStats } from "./lib/process-stats.ts";
import { renderMarkdown, renderText } from "./lib/report.ts";
import type {
  BenchResults,
  GatewayFigures,
  PendingMemoryFigures,
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
  /** Counts of pending calls memory is measured at, each on fresh processes. */
  pendingCalls: number[];
  scenarioIds: string[] | undefined;
  /** The scale-out phase (many norths on one reply topic, workers): unless --scenarios leaves it out. */
  scaleOut: boolean;
  useH2load: boolean;
  /** Rounds of each target point (unary 100 B at 1, 64, 256); the median round counts. */
  targetRounds: number;
  /**
   * A run per side at `settleConcurrency` before each scenario's first point, not measured:
   * the JIT of every process reaches the steady state a 1 s warm-up per point does not give
   * (a fresh gateway ran unary 100 B at c=256 at 7,400 calls/s, the same one 12 s later at 10,000).
   */
  settleMs: number;
  /** split: north and west in separate processes (as deployed, and as the floor runs). */
  deployment: "split" | "single";
  verbose: boolean;
  /** Most connections a load generator opens for one point. */
  connectionsMax: number;
  /** Load client processes for streaming (and unary without h2load). */
  loadProcesses: number;
  /** raw: gRPC on raw node:http2 streams (the default); connect: the Connect client. */
  streamingClient: "raw" | "connect";
  /**
   * West's idempotency store (docs/idempotency.md): kafka, the changelog (the default, as
   * deployed); memory, none, to see in one run what the changelog costs.
   */
  idempotencyStore: "kafka" | "memory";
}

/** How the gateway ran, for the report's header. */
function gatewayShape(options: Options): string {
  const processes =
    options.deployment === "split"
      ? "north + west (1 process each)"
      : "north and west in 1 process";
  return options.idempotencyStore === "memory"
    ? `${processes}, west without its changelog (idempotency store: memory)`
    : processes;
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
  const store = value("idempotency-store") ?? "kafka";
  if (store !== "kafka" && store !== "memory") {
    throw new Error(`--idempotency-store wants kafka or memory, got ${store}`);
  }
  const pending = value("pending-calls");
  if (pending?.split(",").some((n) => !Number.isInteger(Number(n)) || Number(n) < 1)) {
    throw new Error("--pending-calls wants positive integers, e.g. 10000,100000");
  }
  return {
    smoke,
    concurrencies,
    warmupMs: numberOf("warmup-ms", smoke ? 150 : 1_000),
    durationMs: numberOf("duration-ms", smoke ? 400 : 5_000),
    partitions: numberOf("partitions", 3),
    pendingCalls: argv.includes("--no-pending")
      ? []
      : (value("pending-calls") ?? (smoke ? "10000" : "10000,100000")).split(",").map(Number),
    scenarioIds: value("scenarios")?.split(","),
    scaleOut: value("scenarios")?.split(",").includes("scale-out") ?? true,
    useH2load: !argv.includes("--no-h2load"),
    deployment: value("deployment") === "single" ? ("single" as const) : ("split" as const),
    targetRounds: numberOf("target-rounds", smoke ? 1 : 3),
    settleMs: numberOf("settle-ms", smoke ? 150 : 8_000),
    verbose: argv.includes("--verbose"),
    connectionsMax: 4,
    loadProcesses: Math.max(1, Math.min(2, os.cpus().length)),
    streamingClient: value("streaming-client") === "connect" ? "connect" : "raw",
    idempotencyStore: store,
  };
}

const topics = {
  gatewayRequests: "echo-requests",
  gatewayReplies: "echo-responses",
  floorRequests: "bench-floor-requests",
  floorReplies: "bench-floor-responses",
  nativeRequests: "bench-native-requests",
  nativeReplies: "bench-native-responses",
};

/**
 * Topics of the i-th fresh gateway that holds pending calls: topics of its own, so its west
 * (a new consumer group, a new changelog) does not first read and restore the whole run's
 * records before it is ready.
 */
function pendingTopics(i: number): { requests: string; replies: string } {
  return { requests: `echo-pending-${i}-requests`, replies: `echo-pending-${i}-responses` };
}

const sides = ["direct", "floor", "native", "gateway"] as const;
/** The broker's age limit while pending calls are held (see measurePendingMemory). */
const pendingRetentionMs = 30_000;

type EchoStats = ProcessStats & { calls: Record<string, number> };
type GatewayReady = { port: number; readyInProcessMs: number };

/** The points the targets are read from (unary 100 B at 1, 64 and 256 concurrent calls). */
/**
 * Whether a target is read from this point: every scenario at 16 concurrent calls and more
 * (the ≥ 1.2× targets), and unary 100 B at 1 (its latency target).
 */
function isTargetPoint(scenarioId: string, concurrency: number): boolean {
  return concurrency >= 16 || scenarioId === "unary-100b";
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

/** How long a run warms up, then how long it is measured. */
interface MeasureWindow {
  warmupMs: number;
  durationMs: number;
  /**
   * An unmeasured settle run: a fresh process may finish no call in a short one (the smoke's
   * is 150 ms), which is not a problem; errors still are.
   */
  settle?: boolean;
}

/** Concurrency of the settle runs before each scenario (see Options.settleMs). */
const settleConcurrency = 64;

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
  nativeResponder?: BenchChild<object>;
  nativeRequester?: BenchChild<object>;
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
      [
        ...Object.values(topics),
        ...this.options.pendingCalls.flatMap((_, i) => Object.values(pendingTopics(i))),
      ].join(","),
    ]);
    this.echo = this.spawn("echo", "processes/echo.ts", []);
    this.loadClients = Array.from({ length: this.options.loadProcesses }, (_, i) =>
      this.spawn(`load-${i + 1}`, "processes/load-client.ts", []),
    );
    this.pending = this.spawn("pending-client", "processes/pending-client.ts", []);
    const { bootstrap } = await this.broker.ready;
    const floor = Promise.all([
      this.startFloor("floor", bootstrap),
      this.startFloor("native", bootstrap),
    ]);
    const { port: echoPort } = await this.echo.ready;
    await Promise.all([...this.loadClients.map((c) => c.ready), this.pending.ready, floor]);
    this.echoUrl = `http://127.0.0.1:${echoPort}`;
    log(
      `broker ${bootstrap}, echo ${this.echoUrl}, floors and ${this.loadClients.length} load clients ready`,
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
  async startGateway(
    own: { requests: string; replies: string } = {
      requests: topics.gatewayRequests,
      replies: topics.gatewayReplies,
    },
  ): Promise<void> {
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
      own.requests,
      "--reply-topic",
      own.replies,
      "--deployment",
      this.options.deployment,
      "--idempotency-store",
      this.options.idempotencyStore,
      // A consumer group of its own too: the last gateway's west may be stopped before it
      // leaves its group, and a shared group would wait out its session first.
      "--name",
      own.requests === topics.gatewayRequests ? "bench" : `bench-${own.requests}`,
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

  /**
   * One floor (kafkajs, or native: the gateway's own Kafka client): responder first (its
   * group must exist), then the requester, which waits for a round trip.
   */
  private async startFloor(kind: "floor" | "native", bootstrap: string): Promise<void> {
    const requestTopic = kind === "floor" ? topics.floorRequests : topics.nativeRequests;
    const replyTopic = kind === "floor" ? topics.floorReplies : topics.nativeReplies;
    const responder = this.spawn(`${kind}-responder`, `processes/${kind}-responder.ts`, [
      "--bootstrap",
      bootstrap,
      "--request-topic",
      requestTopic,
      "--partitions",
      String(this.options.partitions),
    ]);
    if (kind === "floor") this.responder = responder;
    else this.nativeResponder = responder;
    try {
      await responder.ready;
      const requester = this.spawn(`${kind}-requester`, `processes/${kind}-requester.ts`, [
        "--bootstrap",
        bootstrap,
        "--request-topic",
        requestTopic,
        "--reply-topic",
        replyTopic,
      ]);
      if (kind === "floor") this.requester = requester;
      else this.nativeRequester = requester;
      await requester.ready;
    } catch (err) {
      if (kind === "floor") this.requester = undefined;
      else this.nativeRequester = undefined;
      this.problems.push(
        `${kind} floor did not start: ${err instanceof Error ? err.message : err}`,
      );
    }
  }

  /** Stops the gateway, the floor and the load clients: the scale-out phase runs its own. */
  async quiet(): Promise<void> {
    const children = [
      this.pending,
      ...this.loadClients,
      this.requester,
      this.responder,
      this.nativeRequester,
      this.nativeResponder,
    ];
    await Promise.allSettled([...children.map((c) => c?.stop(3_000)), this.gateway?.stop(1_500)]);
    this.pending = undefined;
    this.loadClients = [];
    this.requester = undefined;
    this.responder = undefined;
    this.nativeRequester = undefined;
    this.nativeResponder = undefined;
    this.gateway = undefined;
  }

  async stop(): Promise<void> {
    const children = [
      this.pending,
      ...this.loadClients,
      this.requester,
      this.responder,
      this.nativeRequester,
      this.nativeResponder,
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
    window: MeasureWindow,
  ): Promise<PointFigures> {
    const url = target === "gateway" ? this.gatewayUrl : this.echoUrl;
    const { warmupMs, durationMs } = window;
    const { connectionsMax } = this.options;
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
          client: this.options.streamingClient,
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
    const generator = `${clientName(this.options.streamingClient)} (${processes.length} process${processes.length > 1 ? "es" : ""})`;
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
    return { own: ownUs, broker, echo, machine: readMachineCpu(), atMs: performance.now() };
  }

  private async measureFloor(
    kind: "floor" | "native",
    scenario: Scenario,
    concurrency: number,
    window: MeasureWindow,
  ): Promise<PointFigures> {
    const requester = kind === "floor" ? this.requester : this.nativeRequester;
    const responder = kind === "floor" ? this.responder : this.nativeResponder;
    if (!requester) throw new Error(`${kind} floor is not running`);
    const { warmupMs, durationMs } = window;
    const run = requester.request<LoadRunResult>("run", {
      request: { scenario, concurrency, connections: 1, warmupMs, durationMs },
    });
    const own = [requester, responder];
    const cpu0 = await sleep(warmupMs).then(() => this.cpuSnapshot(own));
    const result = await run;
    const cpu1 = await this.cpuSnapshot(own);
    const generator = `${kind === "floor" ? "kafkajs" : "native"} requester (1 process)`;
    return withCpu(figuresOf([result], durationMs, generator), cpu0, cpu1);
  }

  async measure(
    target: TargetName,
    scenario: Scenario,
    concurrency: number,
    window: MeasureWindow = this.options,
  ): Promise<PointFigures | undefined> {
    if (target === "gateway" && !this.gateway) return undefined;
    if (target === "floor" && !this.requester) return undefined;
    if (target === "native" && !this.nativeRequester) return undefined;
    try {
      const figures =
        target === "floor" || target === "native"
          ? await this.measureFloor(target, scenario, concurrency, window)
          : await this.measureGrpc(target, scenario, concurrency, window);
      if (figures.calls === 0 && !(window.settle && Object.keys(figures.errors).length === 0)) {
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
   * Memory per pending call at `calls` pending calls: RSS (and JS heap) with the calls held
   * by the upstream's delay hook, against idle (both after a GC), on the fresh gateway
   * (north's process alone, and north + west) and on a fresh bare HTTP/2 server holding as
   * many streams; with `withDirect`, on a fresh echo upstream called directly too (what the
   * runtime's HTTP/2 server and connect-node alone cost per open call). `withDirect` also
   * fills the older single-count fields of `figures`.
   */
  async measurePendingMemory(
    calls: number,
    figures: GatewayFigures,
    withDirect: boolean,
  ): Promise<PendingMemoryFigures> {
    const result: PendingMemoryFigures = {
      pendingCalls: calls,
      northIdleRssBytes: null,
      northPendingRssBytes: null,
      northBytesPerCall: null,
      northHeapBytesPerCall: null,
      gatewayBytesPerCall: null,
      http2StreamBytes: null,
      northToHttp2StreamRatio: null,
      heldAtUpstream: null,
      answeredEarly: null,
      openMs: null,
    };
    const { gateway, pending } = this;
    if (!gateway || !pending) return result;
    // Every call must still be pending when sampled: opening 100,000 takes a while.
    const delayMs = pendingDelayMsFor(calls);
    const message = echoTextOfSize(100, `delay:${delayMs}:`);
    const timeoutS = Math.ceil(delayMs / 1000) + 30;
    /**
     * Opens the calls at `url`, samples `process` once `heldCount` reaches `expected` (and
     * `serving`, when given, reaches `calls`: north may read a burst at Kafka's pace).
     */
    const holdAt = async <S extends ProcessStats>(
      process: BenchChild<object>,
      url: string,
      heldCount: () => Promise<number>,
      expected: number,
      serving?: () => Promise<number>,
    ) => {
      const idle = await process.request<S>("stats", { gc: true });
      const before = await heldCount();
      const opened = Date.now();
      await pending.request("open", { url, calls, message, timeoutS }, 120_000);
      const openMs = Date.now() - opened;
      // Sample once everything expected is held (and a second has passed), at most after a
      // third of the upstream's delay.
      const waitFrom = Date.now();
      let held = 0;
      for (;;) {
        await sleep(250);
        held = (await heldCount()) - before;
        const waited = Date.now() - waitFrom;
        const served = serving ? await serving() : calls;
        if (held >= expected && served >= calls && waited >= 1_000) break;
        if (waited >= delayMs / 3) break;
      }
      // What the opening burst left for the collector is collected, and the pages it emptied
      // are handed back after the allocator's purge delay: the sample is what the held calls
      // keep, not the burst (docs/limits.md, "Memory and the allocator").
      const settleMs = allocatorSettleMs();
      if (settleMs > 0) {
        await process.request<S>("stats", { gc: true }, 60_000);
        await sleep(settleMs);
      }
      const sample = await process.request<S>("stats", { gc: true }, 60_000);
      const status = await pending.request<{ responded: number }>("status");
      await pending.request("close", {}, 60_000);
      if (Date.now() - opened >= delayMs) {
        this.problems.push(
          `pending-call test (${process.name}, ${calls}): the delay ran out before sampling`,
        );
      }
      return {
        idle,
        sample,
        held,
        openMs,
        answeredEarly: status.responded,
        rssPerCall: round((sample.rssBytes - idle.rssBytes) / calls, 0),
      };
    };
    try {
      // West takes at most maxConcurrentCalls to the upstream; the rest wait in Kafka, and
      // every call waits at north.
      const viaGateway = await holdAt<GatewayStats>(
        gateway,
        this.gatewayUrl,
        () => this.echoCalls("UnaryEcho"),
        Math.min(calls, defaultKafkaGrpcOptions().maxConcurrentCalls),
        () => gateway.request<number>("north-calls"),
      );
      if (viaGateway.held === 0) {
        // Nothing got through: the figure would measure failed calls, not pending ones.
        this.problems.push(
          `pending-call test (${calls}): no call reached the upstream through the gateway`,
        );
      } else {
        const { idle, sample } = viaGateway;
        result.northIdleRssBytes = idle.north.rssBytes;
        result.northPendingRssBytes = sample.north.rssBytes;
        result.northBytesPerCall = round((sample.north.rssBytes - idle.north.rssBytes) / calls, 0);
        result.northHeapBytesPerCall = round(
          (sample.north.heapUsedBytes - idle.north.heapUsedBytes) / calls,
          0,
        );
        result.gatewayBytesPerCall = viaGateway.rssPerCall;
        result.heldAtUpstream = viaGateway.held;
        result.answeredEarly = viaGateway.answeredEarly;
        result.openMs = viaGateway.openMs;
        if (withDirect) {
          figures.idleRssBytes = idle.rssBytes;
          figures.pendingRssBytes = sample.rssBytes;
          figures.pendingAtUpstream = viaGateway.held;
          figures.pendingAnsweredEarly = viaGateway.answeredEarly;
          figures.memoryPerPendingCallBytes = viaGateway.rssPerCall;
          figures.heapPerPendingCallBytes = round(
            (sample.heapUsedBytes - idle.heapUsedBytes) / calls,
            0,
          );
        }
      }
      // References, each a fresh process too: a bare HTTP/2 server that only holds the
      // streams, and the echo upstream (connect-node) called directly.
      const holder = this.spawn<{ port: number }>(
        "stream-holder",
        "processes/stream-holder.ts",
        [],
      );
      try {
        const { port: holderPort } = await holder.ready;
        const bare = await holdAt(
          holder,
          `http://127.0.0.1:${holderPort}`,
          async () => (await holder.request<{ held: number }>("stats")).held,
          calls,
        );
        result.http2StreamBytes = bare.rssPerCall;
        if (withDirect) figures.http2StreamBytes = bare.rssPerCall;
      } finally {
        await holder.stop(1_500);
      }
      if (result.northBytesPerCall !== null && result.http2StreamBytes) {
        result.northToHttp2StreamRatio = round(
          result.northBytesPerCall / result.http2StreamBytes,
          3,
        );
      }
      if (withDirect) {
        const echo = this.spawn<{ port: number }>("echo-fresh", "processes/echo.ts", []);
        try {
          const { port: echoPort } = await echo.ready;
          const direct = await holdAt(
            echo,
            `http://127.0.0.1:${echoPort}`,
            async () => (await echo.request<EchoStats>("stats")).calls.UnaryEcho ?? 0,
            calls,
          );
          figures.directMemoryPerPendingCallBytes = direct.rssPerCall;
        } finally {
          await echo.stop(1_500);
        }
      }
    } catch (err) {
      this.problems.push(
        `pending-call test (${calls}): ${err instanceof Error ? err.message : err}`,
      );
    }
    return result;
  }
}

/**
 * How long the upstream holds each pending call: long enough to open them all and sample
 * (opening 100,000 through the gateway takes tens of seconds on 2 cores).
 */
function pendingDelayMsFor(calls: number): number {
  return calls <= 10_000 ? 20_000 : 20_000 + 60_000 * Math.ceil(calls / 100_000);
}

function clientName(client: "raw" | "connect"): string {
  return client === "raw" ? "gRPC on raw node:http2 streams" : "Connect gRPC client";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type CpuSnapshot = {
  own?: number;
  broker?: number;
  echo?: number;
  machine?: MachineCpu | undefined;
  atMs?: number;
};

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
  const others = otherCores(cpu0.machine, cpu1.machine, (cpu1.atMs ?? 0) - (cpu0.atMs ?? 0));
  if (others !== undefined) figures.machineOtherCores = others;
  return figures;
}

function pointSummary(figures: PointFigures | undefined): string {
  if (!figures) return "n/a";
  const failed = figures.failed ? ` errors ${figures.failed}` : "";
  const others =
    figures.machineOtherCores === undefined ? "" : ` others ${figures.machineOtherCores} cores`;
  return `${Math.round(figures.callsPerS)}/s p50 ${figures.p50Ms}ms p99 ${figures.p99Ms}ms${failed}${others}`;
}

function ratios(point: ScenarioPoint): void {
  const { gateway, floor, native } = point;
  if (gateway && native && gateway.calls > 0 && native.calls > 0) {
    point.gatewayToNativeCallsRatio = round(gateway.callsPerS / native.callsPerS, 3);
  }
  if (!gateway || !floor || gateway.calls === 0 || floor.calls === 0) return;
  point.gatewayToFloorCallsRatio = round(gateway.callsPerS / floor.callsPerS, 3);
  point.gatewayP50AddedMs = round(gateway.p50Ms - floor.p50Ms, 3);
  point.gatewayToFloorP99Ratio = round(gateway.p99Ms / floor.p99Ms, 3);
}

/** Issue 17's targets: the gateway clearly faster than a hand-written kafkajs service. */
function targetChecks(results: BenchResults): TargetCheck[] {
  const g = results.gateway;
  const fmt = (v: number | null | undefined, f: (v: number) => string) =>
    v === null || v === undefined ? "n/a" : f(v);
  const times = (v: number) => `${v.toFixed(2)}×`;
  const atLeast = (v: number | null | undefined, goal: number) =>
    v === null || v === undefined ? null : v >= goal;
  const atMost = (v: number | null | undefined, goal: number) =>
    v === null || v === undefined ? null : v <= goal;
  const totalFailed = Object.values(results.failedCalls).reduce((a, b) => a + (b ?? 0), 0);
  const anyGateway = results.scenarios.some((s) => s.points.some((p) => p.gateway));
  const shared = (results.scaleOut?.replyRead ?? []).filter((p) => p.mode === "group");
  const worstAmplification = shared.some((p) => p.amplification !== null)
    ? Math.max(...shared.map((p) => p.amplification ?? 0))
    : null;
  const checks: TargetCheck[] = [];
  // Every scenario at 16, 64 and 256 calls: gateway ≥ 1.2× the kafkajs floor.
  for (const scenario of results.scenarios) {
    const points = scenario.points.filter((p) => [16, 64, 256].includes(p.concurrency));
    if (points.length === 0) continue;
    const ratios = points.map((p) => p.gatewayToFloorCallsRatio);
    const known = ratios.filter((r): r is number => r !== undefined);
    checks.push({
      name: `${scenario.title} calls/s at c=${points.map((p) => p.concurrency).join("/")} vs floor`,
      goal: "≥ 1.2× floor",
      value: ratios.map((r) => fmt(r, times)).join(" / "),
      pass: known.length === ratios.length ? known.every((r) => r >= 1.2) : null,
    });
  }
  checks.push(
    {
      name: "unary 100 B calls/s at c=64 vs floor",
      goal: "≥ 1.5× floor",
      value: fmt(results.unaryC64RatioToFloor, times),
      pass: atLeast(results.unaryC64RatioToFloor, 1.5),
    },
    {
      name: "unary 100 B calls/s at c=64 vs native floor",
      goal: "≥ 0.6× native floor",
      value: fmt(results.unaryC64RatioToNativeFloor, times),
      pass: atLeast(results.unaryC64RatioToNativeFloor, 0.6),
    },
    {
      name: "unary 100 B p50 at c=1 over floor",
      goal: "≤ floor p50",
      value: fmt(results.unaryC1P50AddedMs, (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} ms`),
      pass: atMost(results.unaryC1P50AddedMs, 0),
    },
    {
      name: "unary 100 B p99 at c=256 vs floor p99",
      goal: "≤ 1.0× floor",
      value: fmt(results.unaryC256P99RatioToFloor, times),
      pass: atMost(results.unaryC256P99RatioToFloor, 1),
    },
    {
      name: "failed calls (gateway / floor / native / direct)",
      goal: "0",
      value: `${results.failedCalls.gateway} / ${results.failedCalls.floor} / ${results.failedCalls.native ?? 0} / ${results.failedCalls.direct}`,
      pass: anyGateway ? totalFailed === 0 : null,
    },
  );
  for (const m of g.pendingMemory ?? []) {
    checks.push({
      name: `north's memory per pending call (${m.pendingCalls} pending) vs bare HTTP/2 stream`,
      goal: "≤ 1.5× stream",
      value:
        m.northBytesPerCall === null
          ? "n/a"
          : `${(m.northBytesPerCall / 1024).toFixed(2)} KiB = ${fmt(m.northToHttp2StreamRatio, times)}`,
      pass: atMost(m.northToHttp2StreamRatio, 1.5),
    });
  }
  checks.push(
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
  );
  return checks;
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
    pendingCalls: options.pendingCalls[0] ?? 0,
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
      if (options.settleMs > 0) {
        // Not measured: every side runs the scenario once before its first point (Options.settleMs).
        for (const target of sides) {
          await harness.measure(target, scenario, settleConcurrency, {
            warmupMs: 0,
            durationMs: options.settleMs,
            settle: true,
          });
        }
        log(
          `${scenario.id.padEnd(13)} settled: ${options.settleMs} ms per side at c=${settleConcurrency}`,
        );
      }
      for (const concurrency of options.concurrencies) {
        const point: ScenarioPoint = { concurrency };
        // The points the targets are read from get several rounds: on a shared machine one
        // 5 s window of either side can be off by half. Rounds interleave the three sides.
        const rounds = isTargetPoint(scenario.id, concurrency) ? options.targetRounds : 1;
        const measured: Record<TargetName, PointFigures[]> = {
          direct: [],
          floor: [],
          native: [],
          gateway: [],
        };
        for (let round = 0; round < rounds; round++) {
          // Back to back per point, so drift on the machine hits every side alike. No target
          // is read from the direct side (no Kafka): one round of it is enough.
          for (const target of sides) {
            if (target === "direct" && round > 0) continue;
            const figures = await harness.measure(target, scenario, concurrency);
            if (figures) measured[target].push(figures);
          }
        }
        for (const target of sides) {
          const figures = medianRound(measured[target]);
          if (figures) point[target] = figures;
        }
        ratios(point);
        result.points.push(point);
        log(
          `${scenario.id.padEnd(13)} c=${String(concurrency).padEnd(3)}  gateway ${pointSummary(point.gateway)} | floor ${pointSummary(point.floor)} | native ${pointSummary(point.native)} | direct ${pointSummary(point.direct)}`,
        );
      }
      scenarioResults.push(result);
    }
    if (harness.gateway && selected.length > 0) {
      gatewayFigures.peakRssBytes = (
        await harness.gateway.request<ProcessStats>("stats")
      ).peakRssBytes;
      // RSS does not shrink after load, so pending calls in the same process would reuse
      // memory the load left behind: a fresh gateway starts for each count (the first gives
      // a second start-to-ready sample).
      gatewayFigures.pendingMemory = [];
      // West may read a pending call's request up to 15 s after north wrote it: the broker's
      // age limit, short while load runs (bench/processes/broker.ts), must not drop it first.
      if (options.pendingCalls.length > 0) {
        await harness.broker?.request("retention", { ms: pendingRetentionMs });
      }
      for (const [i, calls] of options.pendingCalls.entries()) {
        await harness.startGateway(pendingTopics(i));
        if (!harness.gateway) break;
        if (i === 0) gatewayFigures.secondReadyMs = round(harness.gateway.spawnToReadyMs, 1);
        log(`holding ${calls} pending calls at a fresh gateway`);
        const m = await harness.measurePendingMemory(calls, gatewayFigures, i === 0);
        gatewayFigures.pendingMemory.push(m);
        log(
          m.northBytesPerCall === null
            ? "memory per pending call: not measured"
            : `north's memory per pending call ${m.northBytesPerCall} B, bare HTTP/2 stream ${m.http2StreamBytes} B (${m.heldAtUpstream} at the upstream, opened in ${m.openMs} ms)`,
        );
      }
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
  const failedCalls = { gateway: 0, floor: 0, native: 0, direct: 0 };
  for (const s of scenarioResults) {
    for (const p of s.points) {
      for (const t of sides) failedCalls[t] += p[t]?.failed ?? 0;
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
      unary: harness.h2load ?? `${clientName(options.streamingClient)} (h2load not installed)`,
      streaming: `${clientName(options.streamingClient)} (${options.loadProcesses} processes)`,
      floor: "kafkajs requester + kafkajs responder (1 process each)",
      native: "requester + responder on the gateway's own Kafka client (1 process each)",
      gateway: gatewayShape(options),
    },
    settings: {
      concurrencies: options.concurrencies,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      partitions: options.partitions,
      connectionsMax: options.connectionsMax,
      loadProcesses: options.loadProcesses,
      targetRounds: options.targetRounds,
      settleMs: options.settleMs,
      allocatorPurgeDelay,
      allocatorPurgeHoles,
      idempotencyStore: options.idempotencyStore,
    },
    unaryC64RatioToFloor: unary64?.gatewayToFloorCallsRatio ?? null,
    unaryC1P50AddedMs: pointAt("unary-100b", 1)?.gatewayP50AddedMs ?? null,
    unaryC256P99RatioToFloor: pointAt("unary-100b", 256)?.gatewayToFloorP99Ratio ?? null,
    serverStreamC64RatioToFloor: pointAt("server-stream", 64)?.gatewayToFloorCallsRatio ?? null,
    bidiC64RatioToFloor: pointAt("bidi", 64)?.gatewayToFloorCallsRatio ?? null,
    unaryC64RatioToNativeFloor: unary64?.gatewayToNativeCallsRatio ?? null,
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
