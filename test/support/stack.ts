/**
 * A whole deployment on loopback for scenario tests: the embedded broker, the echo
 * upstream, and a gateway (west + north) configured like Zilla's grpc.kafka.proxy example.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel } from "kafkajs";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import type { GatewayConfig, NorthConfig, WestConfig } from "../../src/config/types.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { createLogger, type Logger, silentLogger } from "../../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exampleConfig, replyTopic, requestTopic } from "./example-config.ts";

// Kept here too: scenario tests import the example's config and topics with the stack.
export { exampleConfig, replyTopic, requestTopic } from "./example-config.ts";

export interface StackOptions {
  /** Partitions of the request and reply topics (default 3). */
  partitions?: number;
  /** Changes to the default north config (after defaults are built). */
  north?: (north: NorthConfig) => void;
  /** Changes to the default west config. */
  west?: (west: WestConfig) => void;
  /** Start north (default true) and west (default true). */
  withNorth?: boolean;
  withWest?: boolean;
  /** Log to stdout (default: silent unless GATEWAY_TEST_LOG is set). */
  logger?: Logger;
}

export interface Stack {
  broker: Broker;
  echo: EchoServer;
  gateway: Gateway;
  config: GatewayConfig;
  /** http://127.0.0.1:PORT of the first north listener. */
  northUrl: string;
  /** A Connect gRPC client for the echo service through north. */
  client: Client<typeof Echo>;
  /** A kafkajs client on the stack's broker, for reading and writing records directly. */
  kafka: Kafka;
  close(): Promise<void>;
}

/** Starts broker, echo upstream and gateway; `close()` stops them in reverse order. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const logger =
    opts.logger ?? (process.env.GATEWAY_TEST_LOG ? createLogger("debug") : silentLogger);
  const partitions = opts.partitions ?? 3;
  const broker = await startBroker({ port: 0, defaultPartitions: partitions });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  const echo = await startEchoServer();
  const config = exampleConfig(broker.bootstrap, echo.port);
  const [north] = config.north;
  const [west] = config.west;
  if (north) opts.north?.(north);
  if (west) opts.west?.(west);
  if (opts.withNorth === false) config.north = [];
  if (opts.withWest === false) config.west = [];
  let gateway: Gateway;
  try {
    gateway = await startGateway(config, { logger });
  } catch (err) {
    await echo.close();
    await broker.close();
    throw err;
  }
  const port = gateway.north[0]?.ports[0] ?? 0;
  const northUrl = `http://127.0.0.1:${port}`;
  const client = createClient(Echo, createGrpcTransport({ baseUrl: northUrl }));
  const kafka = new Kafka({
    clientId: "test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  return {
    broker,
    echo,
    gateway,
    config,
    northUrl,
    client,
    kafka,
    async close() {
      await gateway.close(1_000);
      await echo.close();
      await broker.close();
    },
  };
}
