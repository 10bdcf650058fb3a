/**
 * The gateway command line.
 *
 *   gateway                                   the embedded default: broker, echo upstream, example topology
 *   gateway start --config FILE [options]     run a zilla.yaml
 *   gateway validate --config FILE [options]  check a zilla.yaml, print its pipelines (exit 0) or errors (exit 2)
 *   gateway broker [--port 9092] [--host H] [--partitions N]
 *
 * Options: --kafka-servers host:port,...  --ops-port N (default 7190, 0 = off)  --log-level debug|info|warn|error
 * Exit codes: 0 ok, 1 failure at run time, 2 bad usage or invalid config.
 */
import { realpathSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { getRequestListener } from "@hono/node-server";
import { type Broker, startBroker } from "./broker/broker.ts";
import { formatConfigErrors, formatPipelines } from "./config/format-pipelines.ts";
import { loadConfig } from "./config/load-config.ts";
import { createSelfSignedCertificate } from "./config/self-signed.ts";
import type { GatewayConfig } from "./config/types.ts";
import { type Gateway, type StartGatewayOptions, startGateway } from "./gateway.ts";
import { createLogger, type Logger, type LogLevel } from "./ops/logger.ts";
import { createOpsApp } from "./ops/ops-app.ts";
import { loadServiceRegistry } from "./service-registry.ts";
import { type EchoServer, startEchoServer } from "./upstream/echo-server.ts";

const usage = `usage:
  gateway                                   run the embedded default (broker, echo upstream, example topology)
  gateway start --config FILE [options]     run a zilla.yaml
  gateway validate --config FILE [options]  check a zilla.yaml and print its pipelines
  gateway broker [--port 9092] [--host 127.0.0.1] [--partitions 1]

options:
  --kafka-servers host:port,...   override the kafka client binding's servers
  --ops-port N                    HTTP/1.1 port for /healthz, /readyz, /metrics (default 7190; 0 = none)
  --log-level debug|info|warn|error
  --grace-ms N                    how long Ctrl-C / SIGTERM waits for in-flight calls (default 10000)`;

const exampleConfigUrl = new URL("../examples/grpc.kafka.proxy/zilla.yaml", import.meta.url);
const exampleKeystorePassword = "zilla-example";

type Options = {
  config?: string;
  "kafka-servers"?: string;
  "ops-port"?: string;
  "log-level"?: string;
  "grace-ms"?: string;
  port?: string;
  host?: string;
  partitions?: string;
  help?: boolean;
};

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
        "ops-port": { type: "string" },
        "log-level": { type: "string" },
        "grace-ms": { type: "string" },
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
  const logger = createLogger(logLevel);
  switch (command) {
    case "default":
      return runEmbeddedDefault(values, logger);
    case "start":
    case "validate": {
      if (!values.config) {
        console.error(`gateway ${command}: --config FILE is required\n\n${usage}`);
        return 2;
      }
      const config = await loadOrReport(values.config, values, process.env);
      if (!config) return 2;
      if (command === "validate") {
        console.log(formatPipelines(config));
        return 0;
      }
      return runUntilSignal(await startAll(config, values, logger), values, logger);
    }
    case "broker":
      return runBroker(values, logger);
    default:
      console.error(`unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

async function loadOrReport(
  path: string,
  values: Options,
  env: Record<string, string | undefined>,
): Promise<GatewayConfig | undefined> {
  const registry = await loadServiceRegistry();
  const kafkaServers = values["kafka-servers"]
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const result = await loadConfig(path, {
    env,
    registry,
    ...(kafkaServers ? { kafkaServers } : {}),
  });
  if (!result.ok) {
    console.error(`${path}: invalid configuration\n${formatConfigErrors(result.errors)}`);
    return undefined;
  }
  return result.config;
}

interface Running {
  gateway: Gateway;
  ops?: Server;
  extra: Array<{ close(): Promise<void> }>;
}

async function startAll(config: GatewayConfig, values: Options, logger: Logger): Promise<Running> {
  const started = Date.now();
  let gateway: Gateway | undefined;
  const app = createOpsApp({ ready: () => gateway !== undefined });
  const fallback = getRequestListener(app.fetch) as unknown as NonNullable<
    StartGatewayOptions["fallback"]
  >;
  gateway = await startGateway(config, { logger, fallback });
  const opsPort = Number(values["ops-port"] ?? 7190);
  let ops: Server | undefined;
  if (opsPort > 0) {
    ops = createHttpServer(getRequestListener(app.fetch));
    await new Promise<void>((resolve, reject) => {
      ops?.once("error", reject).listen(opsPort, "0.0.0.0", resolve);
    });
  }
  logger.info("gateway ready", {
    name: config.name,
    north: gateway.north.map((n) => n.ports),
    west: config.west.map((w) => w.binding),
    kafka: config.kafka.servers,
    opsPort: opsPort > 0 ? opsPort : undefined,
    startMs: Date.now() - started,
  });
  return { gateway, ...(ops ? { ops } : {}), extra: [] };
}

async function runUntilSignal(running: Running, values: Options, logger: Logger): Promise<number> {
  const graceMs = Number(values["grace-ms"] ?? 10_000);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info("stopping: draining in-flight calls", { signal, graceMs });
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  await running.gateway.close(graceMs);
  await new Promise<void>((resolve) =>
    running.ops ? running.ops.close(() => resolve()) : resolve(),
  );
  for (const part of running.extra.reverse()) await part.close();
  logger.info("stopped");
  return 0;
}

async function runEmbeddedDefault(values: Options, logger: Logger): Promise<number> {
  const parts: Array<{ close(): Promise<void> }> = [];
  let broker: Broker | undefined;
  let kafkaServers = values["kafka-servers"];
  if (!kafkaServers) {
    const port = (await isPortFree(9092)) ? 9092 : 0;
    broker = await startBroker({ port, host: "127.0.0.1" });
    kafkaServers = broker.bootstrap;
    parts.push(broker);
    logger.info("embedded broker started (in memory; data is lost on stop)", {
      bootstrap: broker.bootstrap,
    });
  }
  const echo: EchoServer = await startEchoServer({ host: "127.0.0.1", port: 0 });
  parts.push(echo);
  const env = {
    ...process.env,
    KEYSTORE_PASSWORD: process.env.KEYSTORE_PASSWORD ?? exampleKeystorePassword,
    ECHO_SERVER_HOST: "127.0.0.1",
    ECHO_SERVER_PORT: String(echo.port),
  };
  const config = await loadOrReport(
    fileURLToPath(exampleConfigUrl),
    { ...values, "kafka-servers": kafkaServers },
    env,
  );
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
  const running = await startAll(config, values, logger);
  running.extra.push(...parts);
  const ports = running.gateway.north.flatMap((n) => n.ports);
  const h2c = ports[0] ?? 7151;
  console.log(`
The gateway is running: gRPC on ${ports.map((p, i) => `${p} (${config.north[0]?.listeners[i]?.tls ? "TLS" : "h2c"})`).join(", ")}, Kafka at ${kafkaServers}, echo upstream on ${echo.port}.
Call it with:

  npx buf curl --http2-prior-knowledge --schema proto --data '{"message":"hello"}' http://127.0.0.1:${h2c}/grpc.examples.echo.Echo/UnaryEcho

Ctrl-C drains in-flight calls and stops.
`);
  return runUntilSignal(running, values, logger);
}

async function runBroker(values: Options, logger: Logger): Promise<number> {
  const broker = await startBroker({
    port: Number(values.port ?? 9092),
    host: values.host ?? "127.0.0.1",
    defaultPartitions: Number(values.partitions ?? 1),
  });
  console.log(`broker listening on ${broker.bootstrap}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
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
