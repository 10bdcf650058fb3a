/**
 * The gateway command line (`./gateway` in a clone runs it under Bun).
 *
 *   gateway [--config FILE]                   the embedded default: broker, echo upstream, example topology (or FILE)
 *   gateway start --config FILE [options]     run a zilla.yaml
 *   gateway validate --config FILE [options]  check a zilla.yaml, print its pipelines (exit 0) or errors (exit 2)
 *   gateway broker [--port 9092] [--host H] [--partitions N]
 *   gateway echo-upstream [--port 50051] [--host H]
 *
 * Each command's options and defaults are in cli-commands.ts (`gateway COMMAND --help`); the
 * edge flags (timeouts, limits, TLS policy, ops placement) in config/edge-flags.ts.
 * Exit codes: 0 ok (also after Ctrl-C / SIGTERM once calls drained), 1 failure (at start: a
 * port in use, Kafka unreachable; or at run time), 2 bad usage or invalid config, 130/143 a
 * second Ctrl-C / SIGTERM stopped it without draining.
 */
import { realpathSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startBroker } from "./broker/broker.ts";
import { type CommandName, cliDefaults, commandNamed, commands, overview } from "./cli-commands.ts";
import {
  firstSignal,
  loadOrReport,
  type RunSettings,
  runUntilSignal,
  startAll,
} from "./cli-runner.ts";
import { parseEdgeFlags } from "./config/edge-flags.ts";
import { formatPipelines } from "./config/format-pipelines.ts";
import type { KafkaGroupTimings } from "./config/types.ts";
import { runEmbeddedDefault } from "./embedded-default.ts";
import { type CompressionCodec, compressionCodecs } from "./kafka/protocol/compression.ts";
import { parseReplyPartitions } from "./kafka/reply-partitions.ts";
import { type UndecodablePolicy, undecodablePolicies } from "./kafka/undecodable-batches.ts";
import { watchConfigFile } from "./ops/config-watch.ts";
import { createLogger, type Logger, type LogLevel } from "./ops/logger.ts";
import { prometheusEndpointsOf } from "./ops/telemetry.ts";
import { followParent, runWorkerParent, workerIndex } from "./ops/worker-parent.ts";
import { describeStartupError, type StartupContext } from "./startup-error.ts";
import { startEchoServer } from "./upstream/echo-server.ts";

type Options = {
  config?: string;
  "kafka-servers"?: string;
  "kafka-compression"?: string;
  "kafka-undecodable-batches"?: string;
  "kafka-session-timeout-ms"?: string;
  "kafka-heartbeat-interval-ms"?: string;
  "kafka-rebalance-timeout-ms"?: string;
  "ops-port"?: string;
  "ephemeral-ports"?: boolean;
  "log-level"?: string;
  "grace-ms"?: string;
  port?: string;
  host?: string;
  partitions?: string;
  help?: boolean;
  workers?: string;
  "reply-partitions"?: string;
} & Record<string, string | boolean | undefined>;

/** Runs the CLI with `argv` (without the runtime and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === "help") return printHelp(argv[1]);
  const named = first !== undefined && !first.startsWith("-");
  const command = named ? commandNamed(first) : "default";
  if (command === undefined) {
    console.error(`unknown command "${first}"\n\n${overview}`);
    return 2;
  }
  const spec = commands[command];
  let values: Options;
  try {
    values = parseArgs({
      args: named ? argv.slice(1) : argv,
      options: spec.options,
      strict: true,
      allowPositionals: false,
    }).values as Options;
  } catch (err) {
    const what = (err as Error).message.split(". ")[0];
    console.error(`gateway${spec.word ? ` ${spec.word}` : ""}: ${what}\n\n${spec.usage}`);
    return 2;
  }
  if (values.help) return printHelp(spec.word || undefined);
  const logLevel = parseLogLevel(values["log-level"]);
  if (logLevel === undefined) {
    console.error(`--log-level: expected debug, info, warn or error, got "${values["log-level"]}"`);
    return 2;
  }
  const logger = createLogger(logLevel);
  const context: StartupContext = {};
  try {
    return await runCommand(command, values, logger, context);
  } catch (err) {
    // The failures users hit at start get one line that says what to do; a stack trace
    // helps nobody there (it is logged at debug for the rest).
    console.error(describeStartupError(err, context));
    if (logger.enabled("debug")) logger.debug("start-up failure", { stack: (err as Error).stack });
    return 1;
  }
}

/** Prints the help of `word` (the overview for none); exit code 0, or 2 for an unknown one. */
function printHelp(word: string | undefined): number {
  if (word === undefined) {
    console.log(`${overview}\n\n${commands.default.usage}`);
    return 0;
  }
  const command = commandNamed(word);
  if (command === undefined) {
    console.error(`unknown command "${word}"\n\n${overview}`);
    return 2;
  }
  console.log(commands[command].usage);
  return 0;
}

async function runCommand(
  command: CommandName,
  values: Options,
  logger: Logger,
  context: StartupContext,
): Promise<number> {
  if (command === "broker" || command === "echo-upstream") {
    const listen = parseListenOptions(command, values);
    if (typeof listen === "string") return usageError(command, listen);
    return command === "broker"
      ? runBroker(listen, logger, context)
      : runEchoUpstream(listen, logger, context);
  }
  const settings = parseRunSettings(values);
  if (typeof settings === "string") return usageError(command, settings);
  context.opsPort = settings.opsPort;
  if (settings.kafkaServers) {
    context.kafkaServers = settings.kafkaServers;
    context.kafkaServersFromFlag = true;
  }
  if (command === "default") return runEmbeddedDefault(settings, logger, context, values.config);
  if (!values.config) return usageError(command, "--config FILE is required");
  const config = await loadOrReport(values.config, settings, process.env);
  if (!config) return 2;
  if (command === "validate") {
    console.log(formatPipelines(config));
    return 0;
  }
  Object.assign(context, { configPath: values.config, config });
  context.kafkaServers ??= config.kafka.servers;
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
  // Ctrl-C during start-up stops the gateway as soon as it is up.
  const stop = firstSignal(log);
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
  return runUntilSignal(running, stop, settings, log);
}

function usageError(command: CommandName, message: string): number {
  const word = commands[command].word;
  console.error(`gateway${word ? ` ${word}` : ""}: ${message}\n\n${commands[command].usage}`);
  return 2;
}

/** The options shared by `start` and the default, checked; a string is the usage error. */
function parseRunSettings(values: Options): RunSettings | string {
  const kafkaServers = values["kafka-servers"]
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  let opsPort: number | undefined = cliDefaults.opsPort;
  const ops = values["ops-port"];
  if (ops === "off") opsPort = undefined;
  else if (ops !== undefined) {
    opsPort = parsePort(ops);
    if (opsPort === undefined) {
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
  const kafkaGroup = parseGroupFlags(values);
  if (typeof kafkaGroup === "string") return kafkaGroup;
  const grace = values["grace-ms"];
  const graceMs = grace === undefined ? cliDefaults.graceMs : Number(grace);
  if (!Number.isInteger(graceMs) || graceMs < 0) {
    return `--grace-ms: expected a number of milliseconds, got "${grace}"`;
  }
  const edge = parseEdgeFlags(values);
  if (typeof edge === "string") return edge;
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
    ...(kafkaGroup ? { kafkaGroup } : {}),
    opsPort,
    ephemeralPorts: values["ephemeral-ports"] === true,
    graceMs,
    edge,
    workers,
    replyPartitions,
  };
}

interface ListenOptions {
  host: string;
  port: number;
  partitions: number;
}

/** `--host`, `--port` (and the broker's `--partitions`), checked; a string is the usage error. */
function parseListenOptions(
  command: "broker" | "echo-upstream",
  values: Options,
): ListenOptions | string {
  const broker = command === "broker";
  const port =
    values.port === undefined
      ? broker
        ? cliDefaults.brokerPort
        : cliDefaults.echoPort
      : parsePort(values.port);
  if (port === undefined)
    return `--port: expected a port number (0 = any free port), got "${values.port}"`;
  const partitions = Number(values.partitions ?? cliDefaults.brokerPartitions);
  if (!Number.isInteger(partitions) || partitions < 1) {
    return `--partitions: expected a whole number of at least 1, got "${values.partitions}"`;
  }
  const host = values.host ?? (broker ? cliDefaults.brokerHost : cliDefaults.echoHost);
  return { host, port, partitions };
}

function parsePort(text: string): number | undefined {
  const port = Number(text);
  return text.trim() !== "" && Number.isInteger(port) && port >= 0 && port <= 65_535
    ? port
    : undefined;
}

async function runBroker(
  listen: ListenOptions,
  logger: Logger,
  context: StartupContext,
): Promise<number> {
  context.ownPort = { port: listen.port, what: "the broker's port" };
  const stop = firstSignal(logger);
  const broker = await startBroker({
    port: listen.port,
    host: listen.host,
    defaultPartitions: listen.partitions,
  });
  console.log(`broker listening on ${broker.bootstrap} (in memory; data is lost on stop)`);
  await stop;
  await broker.close();
  logger.info("broker stopped");
  return 0;
}

async function runEchoUpstream(
  listen: ListenOptions,
  logger: Logger,
  context: StartupContext,
): Promise<number> {
  context.ownPort = { port: listen.port, what: "the echo upstream's port" };
  const stop = firstSignal(logger);
  const echo = await startEchoServer({
    host: listen.host,
    port: listen.port,
    recordRequests: false,
  });
  console.log(
    `echo upstream listening on ${listen.host}:${echo.port} (grpc.examples.echo.Echo over h2c)`,
  );
  await stop;
  await echo.close();
  logger.info("echo upstream stopped");
  return 0;
}

function parseLogLevel(value: string | undefined): LogLevel | undefined {
  if (value === undefined) return "info";
  return ["debug", "info", "warn", "error"].includes(value) ? (value as LogLevel) : undefined;
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

/** The --kafka-*-ms group timings; undefined when none is given, a string on a bad value. */
function parseGroupFlags(values: Options): KafkaGroupTimings | undefined | string {
  const group: KafkaGroupTimings = {};
  for (const [flag, key] of [
    ["kafka-session-timeout-ms", "sessionTimeoutMs"],
    ["kafka-heartbeat-interval-ms", "heartbeatIntervalMs"],
    ["kafka-rebalance-timeout-ms", "rebalanceTimeoutMs"],
  ] as const) {
    const written = values[flag];
    if (written === undefined) continue;
    const ms = Number(written);
    if (written.trim() === "" || !Number.isInteger(ms) || ms <= 0) {
      return `--${flag}: expected a number of milliseconds, got "${written}"`;
    }
    group[key] = ms;
  }
  return Object.keys(group).length > 0 ? group : undefined;
}
