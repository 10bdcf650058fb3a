/**
 * What `gateway start` and the embedded default share: loading a zilla.yaml (errors printed
 * one per line), starting the ops port and the gateway, and running until a signal, then
 * draining in-flight calls and closing everything in order.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { ConfigError } from "./config/config-error.ts";
import { applyEdgeSettings, type EdgeSettings } from "./config/edge-flags.ts";
import { type LoadConfigOptions, loadConfig } from "./config/load-config.ts";
import type { GatewayConfig } from "./config/types.ts";
import { type Gateway, type StartGatewayOptions, startGateway } from "./gateway.ts";
import { type ReplyPartitions, workerShare } from "./kafka/reply-partitions.ts";
import type { Logger } from "./ops/logger.ts";
import { createOpsHost } from "./ops/ops-host.ts";
import { reportWorkerReady } from "./ops/worker-parent.ts";
import { loadServiceRegistry } from "./service-registry.ts";

/** A signal this soon after the first is the same Ctrl-C delivered again, not a second one. */
const repeatedSignalMs = 1_000;

/** What the command line replaces in the kafka client binding. */
export type KafkaOverrides = Pick<
  LoadConfigOptions,
  "kafkaServers" | "kafkaCompression" | "kafkaUndecodableBatches" | "kafkaGroup"
>;

/** What the options of `start` and the embedded default resolve to. */
export interface RunSettings extends KafkaOverrides {
  /** The ops port to bind (0 = any free port), or undefined for none. */
  opsPort: number | undefined;
  ephemeralPorts: boolean;
  graceMs: number;
  /** Front-door timeouts, limits, TLS policy and where the ops routes answer. */
  edge: EdgeSettings;
  /** Gateway processes on this host (start only). */
  workers: number;
  /** Reply partitions each north owns; undefined: all with one worker, group with more. */
  replyPartitions: ReplyPartitions | undefined;
  /** This process is worker `index` of a `--workers` parent. */
  worker?: number;
}

/** Loads a zilla.yaml with the flags applied; on errors prints them, one per line, and resolves undefined. */
export async function loadOrReport(
  path: string,
  kafka: KafkaOverrides & Pick<RunSettings, "edge">,
  env: Record<string, string | undefined>,
): Promise<GatewayConfig | undefined> {
  const registry = await loadServiceRegistry();
  const result = await loadConfig(path, {
    env,
    registry,
    ...(kafka.kafkaServers ? { kafkaServers: kafka.kafkaServers } : {}),
    ...(kafka.kafkaCompression ? { kafkaCompression: kafka.kafkaCompression } : {}),
    ...(kafka.kafkaUndecodableBatches
      ? { kafkaUndecodableBatches: kafka.kafkaUndecodableBatches }
      : {}),
    ...(kafka.kafkaGroup ? { kafkaGroup: kafka.kafkaGroup } : {}),
  });
  if (!result.ok) {
    for (const error of result.errors) console.error(formatErrorLine(path, error));
    return undefined;
  }
  const problem = applyEdgeSettings(result.config, kafka.edge);
  if (problem) {
    console.error(problem);
    return undefined;
  }
  return result.config;
}

/** `file:line:column: path: message`, the form editors and CI annotations link to. */
function formatErrorLine(file: string, error: ConfigError): string {
  if (error.path === file) return `${file}: ${error.message}`;
  const at = error.line !== undefined ? `:${error.line}:${error.column ?? 1}` : "";
  // A YAML syntax error is about the text, not a key: it has no path.
  return `${file}${at}: ${error.path ? `${error.path}: ` : ""}${error.message}`;
}

export interface Running {
  gateway: Gateway;
  ops?: Server;
  extra: Array<{ close(): Promise<void> }>;
}

type NodeRequestListener = ReturnType<typeof getRequestListener>;

/**
 * Serves a Hono app (fetch handler) to Node's HTTP/1.1 and HTTP/2 servers. HTTP/2 forbids
 * connection-specific headers, and Hono's streaming helpers set `transfer-encoding: chunked`,
 * so those are dropped here; Node frames the body itself on either protocol.
 */
export function honoRequestListener(app: {
  fetch(request: Request, env: unknown): Response | Promise<Response>;
}): NodeRequestListener {
  return getRequestListener(async (request, env) =>
    withoutConnectionHeaders(await app.fetch(request, env)),
  );
}

const connectionHeaders = ["connection", "keep-alive", "proxy-connection", "transfer-encoding"];

function withoutConnectionHeaders(response: Response): Response {
  if (!connectionHeaders.some((name) => response.headers.has(name))) return response;
  const headers = new Headers(response.headers);
  for (const name of connectionHeaders) headers.delete(name);
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

export async function startAll(
  config: GatewayConfig,
  settings: RunSettings,
  logger: Logger,
): Promise<Running> {
  const started = Date.now();
  if (settings.ephemeralPorts) {
    for (const north of config.north) for (const listener of north.listeners) listener.port = 0;
  }
  // Telemetry, readiness and the ops app exist before the gateway, which reports into them.
  const host = await createOpsHost(config);
  const opsHost = settings.edge.opsHost ?? "0.0.0.0";
  // A worker's parent serves the exporters and the ops port for the host (worker-parent.ts).
  const worker = settings.worker;
  if (worker === undefined) await host.listenExporters(opsHost, settings.opsPort);
  const listener = honoRequestListener(host.app);
  const fallback = listener as unknown as NonNullable<StartGatewayOptions["fallback"]>;
  // The ops port answers before the gateway is up, so a probe sees /readyz 503 during start-up
  // rather than a refused connection.
  let ops: Server | undefined;
  if (settings.opsPort !== undefined || worker !== undefined) {
    const server = createHttpServer(listener);
    // A worker's own, for its parent: loopback, any free port, not shared with its siblings.
    const where =
      worker === undefined
        ? { port: settings.opsPort, host: opsHost }
        : { port: 0, host: "127.0.0.1", exclusive: true };
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject).listen(where, resolve);
      });
    } catch (err) {
      await host.close();
      throw err;
    }
    ops = server;
  }
  const replyPartitions = settings.replyPartitions ?? (settings.workers > 1 ? "group" : "all");
  const gateway: Gateway = await startGateway(config, {
    logger,
    // Topic, group and method names stay off the public ports unless asked for.
    ...(settings.edge.opsOnPublicPorts ? { fallback } : {}),
    telemetry: host.telemetry,
    readiness: host.readiness,
    replyPartitions: workerShare(replyPartitions, settings.workers, worker ?? 0),
  }).catch(async (err: unknown) => {
    await new Promise<void>((resolve) => (ops ? ops.close(() => resolve()) : resolve()));
    await host.close();
    throw err;
  });
  const opsPort = ops ? (ops.address() as AddressInfo).port : undefined;
  logger.info(worker === undefined ? "gateway ready" : "worker ready", {
    name: config.name,
    north: gateway.north.map((n) => n.ports),
    west: config.west.map((w) => w.binding),
    kafka: config.kafka.servers,
    opsPort,
    startMs: Date.now() - started,
    // The process to signal (a supervisor sees this pid when nothing wraps the gateway).
    pid: process.pid,
  });
  if (worker !== undefined && opsPort !== undefined) {
    reportWorkerReady(
      gateway.north.map((n) => n.ports),
      opsPort,
    );
  }
  return { gateway, ...(ops ? { ops } : {}), extra: [host] };
}

/**
 * Resolves on the first SIGINT or SIGTERM. A second one exits at once (128 + signal number),
 * for when draining takes longer than the person at the terminal wants to wait.
 */
export function firstSignal(logger: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let firstAt: number | undefined;
    // One listener per signal for the whole run: listeners added while a signal is being
    // handled would see that same signal under Deno.
    const on = (signal: NodeJS.Signals, exitCode: number) => () => {
      if (firstAt === undefined) {
        firstAt = Date.now();
        resolve(signal);
        return;
      }
      // Ctrl-C reaches the whole process group, and wrappers (`npx`, `bun run`) forward it
      // too: the same keypress can arrive more than once, a second one cannot come this fast.
      if (Date.now() - firstAt < repeatedSignalMs) return;
      logger.warn("second signal: stopping without draining", { signal });
      process.exit(exitCode);
    };
    process.on("SIGINT", on("SIGINT", 130));
    process.on("SIGTERM", on("SIGTERM", 143));
  });
}

/** Waits for `stop` (the first signal), then drains and closes everything; resolves 0. */
export async function runUntilSignal(
  running: Running,
  stop: Promise<NodeJS.Signals>,
  settings: RunSettings,
  logger: Logger,
): Promise<number> {
  const signal = await stop;
  logger.info("stopping: draining in-flight calls", { signal, graceMs: settings.graceMs });
  // Probes get a refusal from now on rather than a ready answer from a stopping gateway.
  const opsClosed = new Promise<void>((resolve) =>
    running.ops ? running.ops.close(() => resolve()) : resolve(),
  );
  running.ops?.closeIdleConnections();
  await running.gateway.close(settings.graceMs);
  running.ops?.closeAllConnections();
  await opsClosed;
  for (const part of running.extra.reverse()) await part.close();
  logger.info("stopped");
  return 0;
}
