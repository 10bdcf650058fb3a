/**
 * `gateway start --workers N`: one parent process and N workers on one host, through
 * node:cluster. Every worker is a whole gateway (north owning a share of the reply partitions,
 * west in the same consumer group as its siblings) started from the same command line; the
 * parent holds the listening sockets and hands each accepted connection to a worker in turn
 * (node:cluster does that on Node 20, Bun 1.4 and Deno 2.9 alike; docs/scaling.md).
 *
 * The parent also: forwards SIGINT and SIGTERM to every worker (each drains its calls; the
 * parent exits 0 once all did), restarts a worker that dies (with backoff), and serves the ops
 * port for the whole host: /readyz is ready when every worker is, /metrics is every worker's
 * metrics labelled `worker="i"`, /healthz answers while the parent runs. A changed config
 * file reaches every worker because each one watches it (as a single gateway does).
 */
import cluster, { type Worker } from "node:cluster";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { Logger } from "./logger.ts";
import { createMetricsApp, createOpsApp } from "./ops-app.ts";
import type { ReadinessReport } from "./readiness.ts";
import { mergeWorkerMetrics } from "./worker-metrics.ts";

/** The environment variable that tells a worker its index (0 … N-1). */
const indexVariable = "GATEWAY_WORKER_INDEX";
const readyMessage = "gateway-worker-ready";
const stopMessage = "gateway-worker-stop";

/** What a worker reports once it takes calls. */
export interface WorkerReady {
  type: typeof readyMessage;
  /** Ports per north binding, in listener order (the same in every worker). */
  north: number[][];
  /** Its own ops port on 127.0.0.1, where the parent reads /readyz and /metrics. */
  opsPort: number;
}

/** This process's worker index, or undefined when it is not a worker. */
export function workerIndex(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(process.env[indexVariable]);
  return Number.isInteger(index) && index >= 0 ? index : undefined;
}

/** Tells the parent this worker takes calls. */
export function reportWorkerReady(north: number[][], opsPort: number): void {
  const message: WorkerReady = { type: readyMessage, north, opsPort };
  process.send?.(message);
}

/**
 * Makes this worker take the signals its parent forwards, and drain (as for SIGTERM) when the
 * parent goes away without a word. Forwarded as messages, each raised here again: a signal
 * sent from the parent makes Deno report a clean exit as a death by that signal.
 */
export function followParent(): void {
  process.on("message", (message: unknown) => {
    const m = message as { type?: string; signal?: NodeJS.Signals } | undefined;
    if (m?.type === stopMessage && m.signal) process.kill(process.pid, m.signal);
  });
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}

export interface WorkerParentOptions {
  workers: number;
  /** Ops port for the host (0: any free port), or undefined for none. */
  opsPort: number | undefined;
  /** zilla.yaml prometheus exporter endpoints: served by the parent, for all workers. */
  exporters: readonly { port: number; path: string }[];
  logger: Logger;
  /** Fields for the "gateway ready" line (name, west, kafka, ...). */
  readyFields: Record<string, unknown>;
}

interface WorkerSlot {
  index: number;
  worker: Worker | undefined;
  ready: WorkerReady | undefined;
  restarts: number;
  /** Exit code of its last process, once gone. */
  exitCode: number | undefined;
}

// A worker that dies is started again after this long, doubling up to the maximum.
const restartFirstMs = 500;
const restartMaxMs = 30_000;
// A worker that ran this long before dying is not counted as failing repeatedly.
const healthyRunMs = 60_000;
const scrapeTimeoutMs = 2_000;

/** Runs the workers until SIGINT/SIGTERM; resolves to the exit code. */
export async function runWorkerParent(options: WorkerParentOptions): Promise<number> {
  const { workers, logger } = options;
  const started = Date.now();
  const slots: WorkerSlot[] = Array.from({ length: workers }, (_, index) => ({
    index,
    worker: undefined,
    ready: undefined,
    restarts: 0,
    exitCode: undefined,
  }));
  let stopping = false;
  let restarts = 0;
  let announced = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  const scrape = async (slot: WorkerSlot, path: string) => {
    if (!slot.ready) throw new Error("starting");
    const response = await fetch(`http://127.0.0.1:${slot.ready.opsPort}${path}`, {
      signal: AbortSignal.timeout(scrapeTimeoutMs),
    });
    return { status: response.status, text: await response.text() };
  };

  const ready = async (): Promise<ReadinessReport> => {
    const reasons: string[] = stopping ? ["shutting down"] : [];
    await Promise.all(
      slots.map(async (slot) => {
        try {
          const answer = await scrape(slot, "/readyz");
          if (answer.status !== 200) {
            const why = answer.text.split("\n").slice(1).filter(Boolean).join("; ");
            reasons.push(`worker ${slot.index}: ${why || "not ready"}`);
          }
        } catch (error) {
          reasons.push(`worker ${slot.index}: ${(error as Error).message}`);
        }
      }),
    );
    return { ready: reasons.length === 0, reasons: reasons.sort() };
  };

  const metrics = async (): Promise<string> => {
    const expositions = await Promise.all(
      slots.map(async (slot) => ({
        worker: String(slot.index),
        text: await scrape(slot, "/metrics").then(
          (answer) => answer.text,
          () => "",
        ),
      })),
    );
    const own = [
      "# HELP gateway_workers Worker processes of this gateway, by state.",
      "# TYPE gateway_workers gauge",
      `gateway_workers{state="ready"} ${slots.filter((s) => s.ready).length}`,
      `gateway_workers{state="configured"} ${workers}`,
      "# HELP gateway_worker_restarts_total Workers started again after they died.",
      "# TYPE gateway_worker_restarts_total counter",
      `gateway_worker_restarts_total ${restarts}`,
      "",
    ].join("\n");
    return own + mergeWorkerMetrics(expositions);
  };

  const servers: Server[] = [];
  const listen = async (
    app: { fetch: (request: Request) => Response | Promise<Response> },
    port: number,
  ) => {
    const server = createServer(getRequestListener(app.fetch));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject).listen(port, "0.0.0.0", () => {
        server.off("error", reject);
        resolve();
      });
    });
    servers.push(server);
    return (server.address() as AddressInfo).port;
  };
  let opsPort: number | undefined;
  if (options.opsPort !== undefined) {
    opsPort = await listen(
      createOpsApp({ ready, metrics, metricsPaths: options.exporters.map((e) => e.path) }),
      options.opsPort,
    );
  }
  for (const exporter of options.exporters) {
    if (exporter.port !== 0 && exporter.port === options.opsPort) continue;
    await listen(createMetricsApp(metrics, exporter.path), exporter.port);
  }

  const fork = (slot: WorkerSlot) => {
    const forkedAt = Date.now();
    const worker = cluster.fork({ [indexVariable]: String(slot.index) });
    slot.worker = worker;
    slot.ready = undefined;
    slot.exitCode = undefined;
    worker.on("message", (message: unknown) => {
      if ((message as WorkerReady | undefined)?.type !== readyMessage) return;
      slot.ready = message as WorkerReady;
      if (!announced && slots.every((s) => s.ready)) {
        announced = true;
        logger.info("gateway ready", {
          ...options.readyFields,
          north: slot.ready.north,
          opsPort,
          workers,
          startMs: Date.now() - started,
        });
      }
    });
    worker.on("exit", (code, signal) => {
      slot.worker = undefined;
      slot.ready = undefined;
      slot.exitCode = code ?? (signal ? 1 : 0);
      if (stopping) {
        if (slots.every((s) => s.worker === undefined)) finish();
        return;
      }
      if (!announced) {
        // A worker that cannot start (bad config, ports taken, Kafka unreachable) will not
        // start on a second try either: stop the others and report its exit code.
        logger.error("worker failed to start; stopping", { worker: slot.index, code, signal });
        stop("SIGTERM");
        return;
      }
      if (Date.now() - forkedAt >= healthyRunMs) slot.restarts = 0;
      const delayMs = Math.min(restartMaxMs, restartFirstMs * 2 ** slot.restarts);
      slot.restarts++;
      restarts++;
      logger.error("worker died; starting it again", {
        worker: slot.index,
        code,
        signal,
        inMs: delayMs,
      });
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, delayMs);
    });
  };

  const finish = () => {
    void Promise.all(
      servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    ).then(() => {
      const failed = slots.find((s) => s.exitCode !== 0);
      resolveDone(failed?.exitCode ?? 0);
    });
    for (const server of servers) server.closeAllConnections();
  };

  /** Forwards `signal` to every worker; the first one starts the drain. */
  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const slot of slots) {
      try {
        slot.worker?.send({ type: stopMessage, signal });
      } catch {
        // Already gone.
      }
    }
    if (slots.every((s) => s.worker === undefined)) finish();
  };
  let firstSignalAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals, exitCode: number) => () => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      logger.info("stopping: draining in-flight calls in every worker", { signal, workers });
      stop(signal);
      return;
    }
    // The same Ctrl-C reaches the workers directly too (one process group): only a later
    // signal is a second one, which stops the workers without draining.
    if (Date.now() - firstSignalAt < 1_000) return;
    logger.warn("second signal: stopping workers without draining", { signal });
    stop(signal);
    void done.then(() => process.exit(exitCode));
  };
  process.on("SIGINT", onSignal("SIGINT", 130));
  process.on("SIGTERM", onSignal("SIGTERM", 143));

  for (const slot of slots) fork(slot);
  const code = await done;
  logger.info("stopped", { workers });
  return code;
}
