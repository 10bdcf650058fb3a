/**
 * The start-up failures users hit, as one line each that says what failed and what to do:
 * a port already in use (which port, what it is for, which flag or config key moves it),
 * Kafka not answering (which servers, what each said). Other errors keep their message.
 */
import type { GatewayConfig } from "./config/types.ts";
import { isKafkaUnreachable } from "./kafka/protocol/errors.ts";

/** What was being started, to name the port or servers an error is about. */
export interface StartupContext {
  /** The zilla.yaml being run (the bundled example under the default command). */
  configPath?: string;
  config?: GatewayConfig;
  /** The ops port asked for (undefined: off). */
  opsPort?: number;
  /** Kafka servers tried, and whether they came from --kafka-servers. */
  kafkaServers?: readonly string[];
  kafkaServersFromFlag?: boolean;
  /** The default command: its listeners are the bundled example's, moved only by flags. */
  embedded?: boolean;
  /** A command's own listener (`broker`, `echo-upstream`), moved with `--port`. */
  ownPort?: { port: number; what: string };
}

/** One line describing `err`, for stderr (no stack trace). */
export function describeStartupError(err: unknown, context: StartupContext): string {
  if (isPortInUse(err)) return portInUseLine(portOf(err), context);
  if (isKafkaUnreachable(err)) return kafkaUnreachableLine(err, context);
  return err instanceof Error ? err.message : String(err);
}

function isPortInUse(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === "EADDRINUSE";
}

/** The port of an EADDRINUSE error: Node and Deno set `port`; Bun's HTTP server only says it. */
function portOf(err: unknown): number | undefined {
  const port = (err as { port?: unknown }).port;
  if (typeof port === "number") return port;
  const match = /port (\d+)|:(\d+)\s*$/.exec((err as Error).message ?? "");
  const text = match?.[1] ?? match?.[2];
  return text === undefined ? undefined : Number(text);
}

function portInUseLine(port: number | undefined, context: StartupContext): string {
  const inUse = `port ${port ?? "(unknown)"} is in use by another process`;
  if (port === undefined) return `${inUse}; stop that process or move this one to another port`;
  if (context.ownPort?.port === port) {
    return `${inUse} (${context.ownPort.what}); stop that process, or pass --port N (0 = any free port)`;
  }
  if (context.opsPort === port) {
    return `${inUse} (the ops port: /healthz /readyz /metrics); stop that process, or pass --ops-port N (0 = any free port) or --ops-port off`;
  }
  const file = context.configPath ?? "the zilla.yaml";
  for (const north of context.config?.north ?? []) {
    const listener = north.listeners.find((l) => l.port === port);
    if (!listener) continue;
    const what = `gRPC ${listener.tls ? "TLS" : "h2c"} listener of ${north.binding}`;
    const move = context.embedded
      ? "pass --ephemeral-ports to bind free ports"
      : `change the tcp server's options.port in ${file}, or pass --ephemeral-ports to bind free ports`;
    return `${inUse} (${what}); stop that process, or ${move}`;
  }
  for (const exporter of context.config?.telemetry?.exporters ?? []) {
    if (exporter.type !== "prometheus" || !exporter.endpoints.some((e) => e.port === port)) {
      continue;
    }
    return `${inUse} (prometheus exporter ${exporter.name}); stop that process, or change telemetry.exporters.${exporter.name}.options.endpoints port in ${file}`;
  }
  return `${inUse}; stop that process or move this one to another port`;
}

function kafkaUnreachableLine(err: unknown, context: StartupContext): string {
  const servers = context.kafkaServers?.join(",") ?? "the configured servers";
  const source = context.kafkaServersFromFlag
    ? "--kafka-servers"
    : `the kafka client binding's options.servers in ${context.configPath ?? "the zilla.yaml"}`;
  const why = (err instanceof Error ? err.message : String(err)).replace(
    /^no Kafka bootstrap server answered: /,
    "",
  );
  return `cannot reach Kafka at ${servers} (from ${source}; tried ${why}); start Kafka there, or pass --kafka-servers HOST:PORT of one that runs`;
}
