/**
 * The gateway command line.
 *
 *   gateway [--config FILE]                   the embedded default: broker, echo upstream, example topology (or FILE)
 *   gateway start --config FILE [options]     run a zilla.yaml
 *   gateway validate --config FILE [options]  check a zilla.yaml, print its pipelines (exit 0) or errors (exit 2)
 *   gateway broker [--port 9092] [--host H] [--partitions N]
 *
 * Options: --kafka-servers host:port,...  --kafka-compression CODEC  --kafka-undecodable-batches
 * fail|skip  --ops-port N|off (default 7190, 0 = any free port)
 * --ephemeral-ports  --log-level debug|info|warn|error  --grace-ms N
 * --workers N|auto  --reply-partitions all|group|LIST (start only; docs/scaling.md)
 * Exit codes: 0 ok (also after Ctrl-C / SIGTERM once calls drained), 1 failure at run time,
 * 2 bad usage or invalid config, 130/143 a second Ctrl-C / SIGTERM stopped it without draining.
 */
import { realpathSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { getRequestListener } from "@hono/node-server";
import { type Broker, startBroker } from "./broker/broker.ts";
import type { ConfigError } from "./config/config-error.ts";
import { formatPipelines } from "./config/format-pipelines.ts";
import { type LoadConfigOptions, loadConfig } from "./config/load-config.ts";
import { createSelfSignedCertificate } from "./config/self-signed.ts";
import type { GatewayConfig } from "./config/types.ts";
import { type Gateway, type StartGatewayOptions, startGateway } from "./gateway.ts";
import { type CompressionCodec, compressionCodecs } from "./kafka/protocol/compression.ts";
import {
  parseReplyPartitions,
  type ReplyPartitions,
  workerShare,
} from "./kafka/reply-partitions.ts";
import { type UndecodablePolicy, undecodablePolicies } from "./kafka/undecodable-batches.ts";
import { watchConfigFile } from "./ops/config-watch.ts";
import { createLogger, type Logger, type LogLevel } from "./ops/logger.ts";
import { createOpsHost } from "./ops/ops-host.ts";
import { prometheusEndpointsOf } from "./ops/telemetry.ts";
import {
  followParent,
  reportWorkerReady,
  runWorkerParent,
  workerIndex,
} from "./ops/worker-parent.ts";
import { repositoryFile } from "./runtime/runtime.ts";
import { loadServiceRegistry } from "./service-registry.ts";
import { type EchoServer, startEchoServer } from "./upstream/echo-server.ts";

const usage = `usage:
  gateway [--config FILE]                   run the embedded default (broker, echo upstream, example topology,
                                            or FILE, e.g. examples/grpc.kafka.proxy.jwt/zilla.yaml)
  gateway start --config FILE [options]     run a zilla.yaml
  gateway validate --config FILE [options]  check a zilla.yaml and print its pipelines
  gateway broker [--port 9092] [--host 127.0.0.1] [--partitions 1]

options:
  --kafka-servers host:port,...   replace the kafka client binding's servers
  --kafka-compression none|gzip|snappy|lz4|zstd
                                  codec of the batches the gateway produces (default none)
  --kafka-undecodable-batches fail|skip
                                  a batch that cannot be decoded holds its partition (fail,
                                  the default) or is logged and skipped (docs/compression.md)
  --ops-port N|off                HTTP/1.1 port for /healthz, /readyz, /metrics
                                  (default 7190; 0 = any free port, logged at start)
  --ephemeral-ports               bind every north listener (and the embedded broker) to a free
                                  port instead of the configured one; the ports are logged
  --log-level debug|info|warn|error
  --grace-ms N                    how long Ctrl-C / SIGTERM waits for in-flight calls (default 10000)
  --workers N|auto                start: N gateway processes sharing the listeners (default 1;
                                  auto = one per core)
  --reply-partitions all|group|LIST
                                  start: reply partitions each north reads (default all with one
                                  worker, group with more; LIST such as 0-7 is shared out
                                  among workers)`;

const exampleKeystorePassword = "zilla-example";
const defaultOpsPort = 7190;
const defaultGraceMs = 10_000;
/** A signal this soon after the first is the same Ctrl-C delivered again, not a second one. */
const repeatedSignalMs = 1_000;

type Options = {
  config?: string;
  "kafka-servers"?: string;
  "kafka-compression"?: string;
  "kafka-undecodable-batches"?: string;
  "ops-port"?: string;
  "ephemeral-ports"?: boolean;
  "log-level"?: string;
  "grace-ms"?: string;
  workers?: string;
  "reply-partitions"?: string;
  port?: string;
  host?: string;
  partitions?: string;
  help?: boolean;
};

/** What the options of `start` and the embedded default resolve to. */
interface RunSettings extends KafkaOverrides {
  /** The ops port to bind (0 = any free port), or undefined for none. */
  opsPort: number | undefined;
  ephemeralPorts: boolean;
  graceMs: number;
  /** Gateway processes on this host (start only). */
  workers: number;
  /** Reply partitions each north owns; undefined: all with one worker, group with more. */
  replyPartitions: ReplyPartitions | undefined;
  /** This process is worker `index` of a `--workers` parent. */
  worker?: number;
}

/** Runs the CLI with `argv` (without the runtime and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed: { values: Options; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        "kafka-servers": { type: "string" },
        "kafka-compression": { type: "string" },
        "kafka-undecodable-batches": { type: "string" },
        "ops-port": { type: "string" },
        "ephemeral-ports": { type: "boolean" },
        "log-level": { type: "string" },
        "grace-ms": { type: "string" },
        workers: { type: "string" },
        "reply-partitions": { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        partitions: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }) as { values: Options; positionals: string[] };
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0] ?? "default";
  if (values.help || command === "help") {
    console.log(usage);
    return 0;
  }
  const logLevel = parseLogLevel(values["log-level"]);
  if (logLevel === undefined) {
    console.error(`--log-level: expected debug, info, warn or error, got "${values["log-level"]}"`);
    return 2;
  }
  const settings = parseRunSettings(values);
  if (typeof settings === "string") {
    console.error(`${settings}\n\n${usage}`);
    return 2;
  }
  if (settings.workers > 1 && command !== "start" && command !== "validate") {
    console.error(`--workers: only gateway start runs workers\n\n${usage}`);
    return 2;
  }
  const logger = createLogger(logLevel);
  switch (command) {
    case "default":
      return runEmbeddedDefault(settings, logger, values.config);
    case "start":
    case "validate": {
      if (!values.config) {
        console.error(`gateway ${command}: --config FILE is required\n\n${usage}`);
        return 2;
      }
      const config = await loadOrReport(values.config, settings, process.env);
      if (!config) return 2;
      if (command === "validate") {
        console.log(formatPipelines(config));
        return 0;
      }
      const worker = workerIndex();
      if (settings.workers > 1 && worker === undefined) {
        return runWorkerParent({
          workers: settings.workers,
          opsPort: settings.opsPort,
          exporters: prometheusEndpointsOf(config),
          logger,
          readyFields: {
            name: config.name,
            west: config.west.map((w) => w.binding),
            kafka: config.kafka.servers,
          },
        });
      }
      const log = worker === undefined ? logger : logger.child({ worker });
      if (worker !== undefined) followParent();
      const running = await startAll(
        config,
        worker === undefined ? settings : { ...settings, worker },
        log,
      );
      // A changed file is validated and applied in place (what needs a restart is logged).
      const path = values.config;
      running.extra.push(
        watchConfigFile({
          path,
          load: async () => {
            const next = await loadOrReport(path, settings, process.env);
            // The running listeners are on free ports: compare like with like.
            if (next && settings.ephemeralPorts) {
              for (const n of next.north) for (const listener of n.listeners) listener.port = 0;
            }
            return next;
          },
          gateway: running.gateway,
          logger: log,
        }),
      );
      return runUntilSignal(running, settings, log);
    }
    case "broker":
      return runBroker(values, logger);
    default:
      console.error(`unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

/** The options shared by `start` and the default, checked; a string is the usage error. */
function parseRunSettings(values: Options): RunSettings | string {
  const kafkaServers = values["kafka-servers"]
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  let opsPort: number | undefined = defaultOpsPort;
  const ops = values["ops-port"];
  if (ops === "off") opsPort = undefined;
  else if (ops !== undefined) {
    opsPort = Number(ops);
    if (ops.trim() === "" || !Number.isInteger(opsPort) || opsPort < 0 || opsPort > 65_535) {
      return `--ops-port: expected a port number (0 = any free port) or "off", got "${ops}"`;
    }
  }
  const compression = values["kafka-compression"];
  if (
    compression !== undefined &&
    !(compressionCodecs as readonly string[]).includes(compression)
  ) {
    return `--kafka-compression: expected ${compressionCodecs.join(", ")}, got "${compression}"`;
  }
  const undecodable = values["kafka-undecodable-batches"];
  if (
    undecodable !== undefined &&
    !(undecodablePolicies as readonly string[]).includes(undecodable)
  ) {
    return `--kafka-undecodable-batches: expected fail or skip, got "${undecodable}"`;
  }
  const grace = values["grace-ms"];
  const graceMs = grace === undefined ? defaultGraceMs : Number(grace);
  if (!Number.isInteger(graceMs) || graceMs < 0) {
    return `--grace-ms: expected a number of milliseconds, got "${grace}"`;
  }
  const workersText = values.workers;
  const workers =
    workersText === undefined
      ? 1
      : workersText === "auto"
        ? availableParallelism()
        : Number(workersText);
  if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
    return `--workers: expected a number of processes (1 or more) or "auto", got "${workersText}"`;
  }
  const replyText = values["reply-partitions"];
  const replyPartitions = replyText === undefined ? undefined : parseReplyPartitions(replyText);
  if (
    typeof replyPartitions === "string" &&
    replyPartitions !== "all" &&
    replyPartitions !== "group"
  ) {
    return replyPartitions;
  }
  return {
    ...(kafkaServers?.length ? { kafkaServers } : {}),
    ...(compression ? { kafkaCompression: compression as CompressionCodec } : {}),
    ...(undecodable ? { kafkaUndecodableBatches: undecodable as UndecodablePolicy } : {}),
    opsPort,
    ephemeralPorts: values["ephemeral-ports"] === true,
    graceMs,
    workers,
    replyPartitions,
  };
}

/** What the command line replaces in the kafka client binding. */
type KafkaOverrides = Pick<
  LoadConfigOptions,
  "kafkaServers" | "kafkaCompression" | "kafkaUndecodableBatches"
>;

/** Loads a zilla.yaml; on errors prints them, one per line, and resolves undefined. */
async function loadOrReport(
  path: string,
  kafka: KafkaOverrides,
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
  });
  if (!result.ok) {
    for (const error of result.errors) console.error(formatErrorLine(path, error));
    return undefined;
  }
  return result.config;
}

/** `file:line:column: path: message`, the form editors and CI annotations link to. */
function formatErrorLine(file: string, error: ConfigError): string {
  if (error.path === file) return `${file}: ${error.message}`;
  const at = error.line !== undefined ? `:${error.line}:${error.column ?? 1}` : "";
  return `${file}${at}: ${error.path}: ${error.message}`;
}

interface Running {
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

async function startAll(
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
  // A worker's parent serves the exporters and the ops port for the host (worker-parent.ts).
  const worker = settings.worker;
  if (worker === undefined) await host.listenExporters("0.0.0.0", settings.opsPort);
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
        ? { port: settings.opsPort, host: "0.0.0.0" }
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
    fallback,
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
function firstSignal(logger: Logger): Promise<NodeJS.Signals> {
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

async function runUntilSignal(
  running: Running,
  settings: RunSettings,
  logger: Logger,
): Promise<number> {
  const signal = await firstSignal(logger);
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

/** The bundled example, found from src/ (sources) and from dist/src/ (the Node build). */
function exampleConfigPath(): string {
  return repositoryFile(import.meta.url, "examples/grpc.kafka.proxy/zilla.yaml");
}

async function runEmbeddedDefault(
  settings: RunSettings,
  logger: Logger,
  configPath?: string,
): Promise<number> {
  const parts: Array<{ close(): Promise<void> }> = [];
  // Another example (e.g. examples/grpc.kafka.proxy.jwt) may run on the same embedded parts.
  const examplePath = configPath ? resolve(configPath) : exampleConfigPath();
  let running: Running;
  let echo: EchoServer;
  let kafkaServers = settings.kafkaServers;
  let config: GatewayConfig | undefined;
  try {
    if (!kafkaServers) {
      const port = !settings.ephemeralPorts && (await isPortFree(9092)) ? 9092 : 0;
      const broker: Broker = await startBroker({ port, host: "127.0.0.1" });
      kafkaServers = [broker.bootstrap];
      parts.push(broker);
      logger.info("embedded broker started (in memory; data is lost on stop)", {
        bootstrap: broker.bootstrap,
      });
    }
    echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
    parts.push(echo);
    const env = {
      ...process.env,
      KEYSTORE_PASSWORD: process.env.KEYSTORE_PASSWORD ?? exampleKeystorePassword,
      ECHO_SERVER_HOST: "127.0.0.1",
      ECHO_SERVER_PORT: String(echo.port),
    };
    config = await loadOrReport(examplePath, { ...settings, kafkaServers }, env);
    if (!config) {
      for (const part of parts.reverse()) await part.close();
      return 2;
    }
    // The embedded default serves TLS with a certificate made at start, not the example's keystore.
    const { cert, key } = createSelfSignedCertificate("localhost");
    for (const north of config.north) {
      for (const listener of north.listeners)
        if (listener.tls)
          listener.tls = { ...listener.tls, cert, key, pfx: undefined, passphrase: undefined };
    }
    running = await startAll(config, settings, logger);
  } catch (err) {
    for (const part of parts.reverse()) await part.close();
    throw err;
  }
  running.extra.push(...parts);
  console.log(describeEmbeddedDefault(running, config, kafkaServers, echo.port, examplePath));
  return runUntilSignal(running, settings, logger);
}

/** What the default prints: where everything runs and `buf curl` commands that call it. */
function describeEmbeddedDefault(
  running: Running,
  config: GatewayConfig,
  kafkaServers: string[],
  echoPort: number,
  examplePath: string,
): string {
  const listeners = config.north.flatMap((n) => n.listeners);
  const ports = running.gateway.north.flatMap((n) => n.ports);
  const h2cPort = ports.find((_, i) => !listeners[i]?.tls);
  const tlsPort = ports.find((_, i) => listeners[i]?.tls);
  const opsPort = running.ops ? (running.ops.address() as AddressInfo).port : undefined;
  // `--schema` names the protos relative to where the gateway was started from.
  const protoDir = join(dirname(examplePath), "..", "..", "proto");
  const schema = shellWord(relative(process.cwd(), protoDir) || ".");
  const data = `-d '{"message":"hello"}'`;
  const method = "grpc.examples.echo.Echo/UnaryEcho";
  const lines = [
    "",
    `The gateway is running: gRPC on ${ports.map((p, i) => `${p} (${listeners[i]?.tls ? "TLS" : "h2c"})`).join(" and ")}, Kafka at ${kafkaServers.join(",")}, echo upstream on ${echoPort}${opsPort !== undefined ? `, /healthz /readyz /metrics on ${opsPort}` : ""}.`,
    "Call it with:",
    "",
  ];
  if (h2cPort !== undefined) {
    lines.push(
      `  npx buf curl --protocol grpc --http2-prior-knowledge --schema ${schema} ${data} http://127.0.0.1:${h2cPort}/${method}`,
      "",
    );
  }
  if (tlsPort !== undefined) {
    lines.push(
      "or over TLS (a self-signed certificate made at start, hence --insecure):",
      "",
      `  npx buf curl --protocol grpc --insecure --schema ${schema} ${data} https://localhost:${tlsPort}/${method}`,
      "",
    );
  }
  if (config.north.some((n) => n.guards)) {
    lines.push(
      `Its calls need a token: see ${shellWord(relative(process.cwd(), join(dirname(examplePath), "README.md")))} for how to mint one and pass it with -H 'Authorization: Bearer …'.`,
      "",
    );
  }
  lines.push("Ctrl-C drains in-flight calls and stops.", "");
  return lines.join("\n");
}

/** A path as one shell word. */
function shellWord(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

async function runBroker(values: Options, logger: Logger): Promise<number> {
  const broker = await startBroker({
    port: Number(values.port ?? 9092),
    host: values.host ?? "127.0.0.1",
    defaultPartitions: Number(values.partitions ?? 1),
  });
  console.log(`broker listening on ${broker.bootstrap}`);
  await firstSignal(logger);
  await broker.close();
  logger.info("broker stopped");
  return 0;
}

function parseLogLevel(value: string | undefined): LogLevel | undefined {
  if (value === undefined) return "info";
  return ["debug", "info", "warn", "error"].includes(value) ? (value as LogLevel) : undefined;
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

const isMain =
  (import.meta as { main?: boolean }).main ??
  (process.argv[1] !== undefined &&
    fileURLToPath(import.meta.url) === realpathSync(process.argv[1]));
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exit(1);
    },
  );
}
