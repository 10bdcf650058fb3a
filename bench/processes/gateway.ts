/**
 * The gateway under test as a bench process: the example topology (north produce route with
 * reply-to, west remote server calling the echo upstream) from test/support/example-config.ts,
 * started with `startGateway`. Prints `{ready, port, readyInProcessMs}` once north accepts
 * calls and west has joined its group; answers `stats` with its CPU time and memory.
 *
 * `--deployment split` (the harness's default) runs the gateway as it is deployed and as the
 * floor runs: north (the front door) in this process and west (the remote server) in a
 * child process, like the floor's requester and responder; `stats` then adds up both, and
 * gives each process's own figures as `north` and `west` (single: `north` is the process).
 * `--deployment single` runs both in this process. `--role west` is the child's part.
 */
import type { GatewayConfig } from "../../src/config/types.ts";
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { exampleConfig } from "../../test/support/example-config.ts";
import { type BenchChild, spawnChild } from "../lib/child.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import {
  type GatewayStats,
  heapTypes,
  type ProcessStats,
  processStats,
  resetPeakRss,
  startRssSampler,
} from "../lib/process-stats.ts";

const args = parseArgs();
const role = args.get("role") ?? "all";
const deployment = args.get("deployment") ?? "split";
if (!["split", "single"].includes(deployment)) {
  throw new Error(`--deployment wants split or single, got ${deployment}`);
}
const example = exampleConfig(stringArg(args, "bootstrap"), numberArg(args, "echo-port"), {
  name: args.get("name") ?? "bench",
  requestTopic: stringArg(args, "request-topic"),
  replyTopic: stringArg(args, "reply-topic"),
});
// --idempotency-store memory: west keeps finished calls in memory only (no changelog).
const store = args.get("idempotency-store");
if (store === "memory" || store === "kafka") {
  for (const west of example.west) west.options.idempotencyStore = store;
}
const split = role === "all" && deployment === "split";
const config: GatewayConfig =
  role === "west" ? { ...example, north: [] } : split ? { ...example, west: [] } : example;
// Logs go to stderr: stdout carries the bench protocol.
const logger = createLogger(args.get("log-level") === "debug" ? "debug" : "warn", (line) =>
  process.stderr.write(`${line}\n`),
);

// West starts alongside north; the pair is ready when both are.
const west: BenchChild<object> | undefined = split
  ? spawnChild("gateway-west", "processes/gateway.ts", [...process.argv.slice(2), "--role", "west"])
  : undefined;
const [gateway] = await Promise.all([startGateway(config, { logger }), west?.ready]);
// Time since the runtime started this process (the harness also measures spawn to ready).
const readyInProcessMs = performance.now();
startRssSampler();

/** This process's figures plus the west child's, when there is one, and each on its own. */
async function stats(gc: boolean): Promise<GatewayStats> {
  const own = processStats({ gc });
  if (!west) return { ...own, north: own };
  const other = await west.request<ProcessStats>("stats", { gc });
  return {
    cpuUs: own.cpuUs + other.cpuUs,
    rssBytes: own.rssBytes + other.rssBytes,
    peakRssBytes: own.peakRssBytes + other.peakRssBytes,
    heapUsedBytes: own.heapUsedBytes + other.heapUsedBytes,
    north: own,
    west: other,
  };
}

/** The sum of north's `grpc_active_requests` gauges. */
async function northCalls(): Promise<number> {
  const text = await gateway.telemetry.registry.expose();
  let calls = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("grpc_active_requests{"))
      calls += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return calls;
}

serveCommands(
  async (command) => {
    switch (command.cmd) {
      case "stats":
        return stats(command.gc === true);
      case "north-calls":
        // Calls north serves now (grpc_active_requests, every method), for the pending-call
        // measurements: they sample once north holds every call.
        return northCalls();
      case "heap-types":
        // North's live objects by type (Bun only), for bench/profile/pending-heap.ts.
        return heapTypes();
      case "reset-peak":
        resetPeakRss();
        await west?.request("reset-peak");
        return null;
      default:
        throw new Error(`unknown command ${command.cmd}`);
    }
  },
  async () => {
    await gateway.close(1_000);
    await west?.stop(2_000);
  },
);
emitReady({ port: gateway.north[0]?.ports[0] ?? 0, readyInProcessMs });
