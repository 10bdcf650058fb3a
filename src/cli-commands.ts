/**
 * The gateway's commands: the options each one takes and its `--help` text. One table, so
 * that a command's help, its parser and the README say the same thing.
 */
import type { ParseArgsConfig } from "node:util";
import { edgeFlagOptions, edgeFlagsUsage } from "./config/edge-flags.ts";

export type CommandName = "default" | "start" | "validate" | "broker" | "echo-upstream";

type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

export interface CommandSpec {
  /** How it is written on the command line (empty for the default). */
  readonly word: string;
  readonly summary: string;
  readonly options: OptionSpecs;
  /** The `--help` text. */
  readonly usage: string;
}

/** Defaults a user can rely on (the help texts and the README say them). */
export const cliDefaults = {
  opsPort: 7190,
  graceMs: 10_000,
  brokerPort: 9092,
  brokerHost: "127.0.0.1",
  brokerPartitions: 1,
  echoPort: 50051,
  echoHost: "127.0.0.1",
} as const;

const help = { help: { type: "boolean", short: "h" } } as const;
const logLevel = { "log-level": { type: "string" } } as const;
const kafkaOptions = {
  "kafka-servers": { type: "string" },
  "kafka-compression": { type: "string" },
  "kafka-undecodable-batches": { type: "string" },
  "kafka-session-timeout-ms": { type: "string" },
  "kafka-heartbeat-interval-ms": { type: "string" },
  "kafka-rebalance-timeout-ms": { type: "string" },
} as const;
/** `start` alone runs workers and chooses reply partitions (docs/scaling.md). */
const startOptions = {
  workers: { type: "string" },
  "reply-partitions": { type: "string" },
} as const;
const runOptions = {
  ...kafkaOptions,
  "ops-port": { type: "string" },
  "ephemeral-ports": { type: "boolean" },
  "grace-ms": { type: "string" },
  ...logLevel,
  ...edgeFlagOptions,
} as const;

const kafkaOptionsText = `  --kafka-compression none|gzip|snappy|lz4|zstd
                                  codec of the batches the gateway produces (default none)
  --kafka-undecodable-batches fail|skip
                                  a batch that cannot be decoded holds its partition (fail,
                                  the default) or is logged and skipped (docs/compression.md)
  --kafka-session-timeout-ms N    consumer-group session timeout (default 30000)
  --kafka-heartbeat-interval-ms N consumer-group heartbeat interval (default 3000)
  --kafka-rebalance-timeout-ms N  consumer-group rebalance timeout (default 60000)
                                  (these three replace the kafka client's options.group;
                                  docs/kafka-client.md)`;

const runOptionsText = `${kafkaOptionsText}
  --ops-port N|off                HTTP/1.1 port for /healthz, /readyz, /metrics
                                  (default ${cliDefaults.opsPort}; 0 = any free port, logged at start)
  --ephemeral-ports               bind every north listener (and the embedded broker) to a free
                                  port instead of the configured one; the ports are logged
  --log-level debug|info|warn|error   (default info)
  --grace-ms N                    how long Ctrl-C / SIGTERM waits for in-flight calls
                                  (default ${cliDefaults.graceMs})
  -h, --help                      this text

edge limits, timeouts and TLS (docs/limits.md, docs/security.md):
${edgeFlagsUsage()}`;

const startOptionsText = `  --workers N|auto                N gateway processes sharing the listeners (default 1;
                                  auto = one per core; docs/scaling.md)
  --reply-partitions all|group|LIST
                                  reply partitions each north reads (default all with one
                                  worker, group with more; LIST such as 0-7 is shared out
                                  among workers)`;

const exitCodesText = `exit codes: 0 stopped cleanly (also after Ctrl-C / SIGTERM once calls drained), 1 failed
(a port in use, Kafka unreachable, ...), 2 bad usage or invalid config, 130/143 a second
Ctrl-C / SIGTERM stopped it without draining`;

/** Every command, by name. */
export const commands: Readonly<Record<CommandName, CommandSpec>> = {
  default: {
    word: "",
    summary: "run the embedded default: broker, echo upstream, Zilla's example topology",
    options: { config: { type: "string", short: "c" }, ...runOptions, ...help },
    usage: `usage: gateway [options]

Runs Zilla's grpc.kafka.proxy example on ports 7151 (h2c) and 7153 (TLS) with an embedded
broker (in memory; on 9092 when free) and an echo upstream, and prints buf curl commands
that call it.

options:
  -c, --config FILE               run this example instead, on the same embedded parts
                                  (e.g. examples/grpc.kafka.proxy.jwt/zilla.yaml)
  --kafka-servers host:port,...   use this Kafka instead of starting the embedded broker
${runOptionsText}

${exitCodesText}`,
  },
  start: {
    word: "start",
    summary: "run a zilla.yaml",
    options: { config: { type: "string", short: "c" }, ...runOptions, ...startOptions, ...help },
    usage: `usage: gateway start --config FILE [options]

Runs a zilla.yaml and applies valid changes to it while running (what needs a restart is
logged).

options:
  -c, --config FILE               the zilla.yaml (required)
  --kafka-servers host:port,...   replace the kafka client binding's servers
${startOptionsText}
${runOptionsText}

${exitCodesText}`,
  },
  validate: {
    word: "validate",
    summary: "check a zilla.yaml and print its pipelines",
    options: {
      config: { type: "string", short: "c" },
      ...kafkaOptions,
      ...help,
    },
    usage: `usage: gateway validate --config FILE [options]

Checks a zilla.yaml without starting anything: prints the resolved pipelines and exits 0, or
prints one "file:line:column: path: message" line per problem and exits 2.

options:
  -c, --config FILE               the zilla.yaml (required)
  --kafka-servers host:port,...   replace the kafka client binding's servers
${kafkaOptionsText}
  -h, --help                      this text`,
  },
  broker: {
    word: "broker",
    summary: "run the embedded Kafka-compatible broker alone (in memory, for development)",
    options: {
      port: { type: "string" },
      host: { type: "string" },
      partitions: { type: "string" },
      ...logLevel,
      ...help,
    },
    usage: `usage: gateway broker [options]

Runs the embedded single-node Kafka-compatible broker. Data lives in memory only and is lost
when it stops; Ctrl-C or SIGTERM stops it (exit 0).

options:
  --port N          (default ${cliDefaults.brokerPort}; 0 = any free port)
  --host ADDRESS    (default ${cliDefaults.brokerHost})
  --partitions N    partitions of an auto-created topic (default ${cliDefaults.brokerPartitions})
  --log-level debug|info|warn|error   (default info)
  -h, --help        this text`,
  },
  "echo-upstream": {
    word: "echo-upstream",
    summary: "run the example's upstream: grpc.examples.echo.Echo over h2c",
    options: { port: { type: "string" }, host: { type: "string" }, ...logLevel, ...help },
    usage: `usage: gateway echo-upstream [options]

Serves grpc.examples.echo.Echo (UnaryEcho, ServerStreamingEcho, ClientStreamingEcho,
BidirectionalStreamingEcho) over h2c: the upstream west calls in Zilla's grpc.kafka.proxy
example (ECHO_SERVER_HOST / ECHO_SERVER_PORT). Ctrl-C or SIGTERM stops it (exit 0).

options:
  --port N          (default ${cliDefaults.echoPort}; 0 = any free port)
  --host ADDRESS    (default ${cliDefaults.echoHost})
  --log-level debug|info|warn|error   (default info)
  -h, --help        this text`,
  },
};

/** The overview `gateway --help` prints after the default command's own options. */
export const overview = `usage: gateway [COMMAND] [options]

commands:
${(Object.values(commands) as CommandSpec[])
  .map((c) => `  ${(c.word || "(none)").padEnd(15)} ${c.summary}`)
  .join("\n")}
  help COMMAND    a command's options (as does COMMAND --help)`;

/** The command named by `word`, if there is one. */
export function commandNamed(word: string): CommandName | undefined {
  return (Object.keys(commands) as CommandName[]).find(
    (name) => name !== "default" && commands[name].word === word,
  );
}
