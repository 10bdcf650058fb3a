/**
 * The no-argument command: Zilla's grpc.kafka.proxy example on its own ports with an embedded
 * broker (in memory) and an echo upstream, and the `buf curl` commands that call it.
 */
import type { AddressInfo } from "node:net";
import { createServer as createNetServer } from "node:net";
import { dirname, join, relative, resolve } from "node:path";
import { type Broker, startBroker } from "./broker/broker.ts";
import { cliDefaults } from "./cli-commands.ts";
import {
  firstSignal,
  loadOrReport,
  type Running,
  type RunSettings,
  runUntilSignal,
  startAll,
} from "./cli-runner.ts";
import { createSelfSignedCertificate } from "./config/self-signed.ts";
import type { GatewayConfig } from "./config/types.ts";
import type { Logger } from "./ops/logger.ts";
import { repositoryFile } from "./runtime/runtime.ts";
import type { StartupContext } from "./startup-error.ts";
import { type EchoServer, startEchoServer } from "./upstream/echo-server.ts";

const exampleKeystorePassword = "zilla-example";

/**
 * What the embedded broker keeps of each partition (README: The embedded broker): its logs
 * live in memory, and without a limit a gateway under steady load grows by every record it
 * ever wrote. The oldest whole batches go beyond it, as Kafka's `retention.bytes` deletes.
 */
export const embeddedRetentionBytes = 128 * 1024 * 1024;

/** The bundled example, found from src/ (sources) and from dist/src/ (the Node build). */
function exampleConfigPath(): string {
  return repositoryFile(import.meta.url, "examples/grpc.kafka.proxy/zilla.yaml");
}

/** Runs the embedded default until a signal; resolves to the exit code. */
export async function runEmbeddedDefault(
  settings: RunSettings,
  logger: Logger,
  context: StartupContext,
  configPath?: string,
): Promise<number> {
  const parts: Array<{ close(): Promise<void> }> = [];
  // Another example (e.g. examples/grpc.kafka.proxy.jwt) may run on the same embedded parts.
  const examplePath = configPath ? resolve(configPath) : exampleConfigPath();
  Object.assign(context, { configPath: examplePath, embedded: true });
  // Ctrl-C during start-up stops the gateway as soon as it is up.
  const stop = firstSignal(logger);
  let running: Running;
  let echo: EchoServer;
  let kafkaServers = settings.kafkaServers;
  let config: GatewayConfig | undefined;
  try {
    if (!kafkaServers) {
      const port =
        !settings.ephemeralPorts && (await isPortFree(cliDefaults.brokerPort))
          ? cliDefaults.brokerPort
          : 0;
      const broker: Broker = await startBroker({
        port,
        host: "127.0.0.1",
        retentionBytes: embeddedRetentionBytes,
      });
      kafkaServers = [broker.bootstrap];
      parts.push(broker);
      logger.info("embedded broker started (in memory; data is lost on stop)", {
        bootstrap: broker.bootstrap,
        retentionBytesPerPartition: embeddedRetentionBytes,
      });
    }
    echo = await startEchoServer({ host: "127.0.0.1", port: 0, recordRequests: false });
    parts.push(echo);
    const env = {
      ...process.env,
      KEYSTORE_PASSWORD: process.env.KEYSTORE_PASSWORD ?? exampleKeystorePassword,
      ECHO_SERVER_HOST: "127.0.0.1",
      ECHO_SERVER_PORT: String(echo.port),
    };
    context.kafkaServers = kafkaServers;
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
    context.config = config;
    running = await startAll(config, settings, logger);
  } catch (err) {
    for (const part of parts.reverse()) await part.close();
    throw err;
  }
  running.extra.push(...parts);
  console.log(describeEmbeddedDefault(running, config, kafkaServers, echo.port, examplePath));
  return runUntilSignal(running, stop, settings, logger);
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

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}
