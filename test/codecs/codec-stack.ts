/**
 * A deployment for the codec and undecodable-batch scenarios: the embedded broker (advertising
 * Produce from v0, so that librdkafka compresses: it only does for brokers that list the old
 * versions), the echo upstream, and the example gateway with an ops host (/readyz, /metrics)
 * whose log lines are kept for the test to read. kcat is the foreign producer and consumer.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Echo,
  EchoRequestSchema,
  EchoResponseSchema,
} from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { KafkaCluster } from "../../src/kafka/client/kafka-cluster.ts";
import { kcat, testSettings } from "../../src/kafka/client/wire-test-kit.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { crc32c } from "../../src/kafka/protocol/crc32c.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { createOpsHost, type OpsHost } from "../../src/ops/ops-host.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { serveApp } from "../ops/ops-fixture.ts";
import { exampleConfig, replyTopic, requestTopic } from "../support/stack.ts";

export { replyTopic, requestTopic };

/** One log line the gateway wrote. */
export type LogLine = Record<string, unknown> & { level: string; msg: string };

export interface CodecStack {
  broker: Broker;
  echo: EchoServer;
  gateway: Gateway;
  config: GatewayConfig;
  host: OpsHost;
  opsUrl: string;
  client: Client<typeof Echo>;
  logs: LogLine[];
  /** GET on the ops app: status and body. */
  ops(path: string): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export interface CodecStackOptions {
  partitions?: number;
  withNorth?: boolean;
  withWest?: boolean;
  configure?: (config: GatewayConfig) => void;
}

/** Starts broker, echo, ops host and gateway; `close()` stops them in reverse order. */
export async function startCodecStack(options: CodecStackOptions = {}): Promise<CodecStack> {
  const partitions = options.partitions ?? 2;
  const broker = await startBroker({
    port: 0,
    defaultPartitions: partitions,
    apiVersionCaps: { [ApiKey.Produce]: [0, 8] },
  });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  const echo = await startEchoServer();
  const config = exampleConfig(broker.bootstrap, echo.port);
  if (options.withNorth === false) config.north = [];
  if (options.withWest === false) config.west = [];
  options.configure?.(config);
  const logs: LogLine[] = [];
  const logger = createLogger("info", (line) => {
    logs.push(JSON.parse(line) as LogLine);
    if (process.env.GATEWAY_TEST_LOG) console.log(line);
  });
  const host = await createOpsHost(config, {});
  const ops = await serveApp(host.app);
  let gateway: Gateway;
  try {
    gateway = await startGateway(config, {
      logger,
      telemetry: host.telemetry,
      readiness: host.readiness,
    });
  } catch (error) {
    await ops.close();
    await host.close();
    await echo.close();
    await broker.close();
    throw error;
  }
  const northUrl = `http://127.0.0.1:${gateway.north[0]?.ports[0] ?? 0}`;
  return {
    broker,
    echo,
    gateway,
    config,
    host,
    opsUrl: ops.url,
    client: createClient(Echo, createGrpcTransport({ baseUrl: northUrl })),
    logs,
    async ops(path) {
      const response = await fetch(`${ops.url}${path}`);
      return { status: response.status, body: await response.text() };
    },
    async close() {
      await gateway.close(1_000);
      await ops.close();
      await host.close();
      await echo.close();
      await broker.close();
    },
  };
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

/**
 * Writes one request (its message record and its end tombstone) with kcat, compressed with
 * `codec`, to `partition` of the request topic.
 */
export async function kcatRequest(
  bootstrap: string,
  id: string,
  message: string,
  codec: string,
  partition = 0,
): Promise<void> {
  const headers = requestRecordHeaders(id).flatMap(([name, value]) => ["-H", `${name}=${value}`]);
  const value = latin1(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message })));
  await kcatWrite(bootstrap, requestTopic, partition, codec, headers, `${id}:${value}|${id}:|`);
}

function requestRecordHeaders(id: string): [string, string][] {
  return [
    ["zilla:service", "grpc.examples.echo.Echo"],
    ["zilla:method", "UnaryEcho"],
    ["zilla:reply-to", replyTopic],
    ["zilla:correlation-id", id],
  ];
}

/**
 * Writes one request (message record and end tombstone) as exactly one uncompressed batch,
 * with the gateway's own client (kcat may split a run into batches): for the batch a test
 * then stores corrupt.
 */
export async function writeRequestBatch(
  bootstrap: string,
  id: string,
  message: string,
  partition = 0,
): Promise<void> {
  const cluster = new KafkaCluster(testSettings(bootstrap));
  try {
    const value = toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));
    const headers = requestRecordHeaders(id);
    await cluster.produce(
      -1,
      5_000,
      new Map([
        [
          requestTopic,
          [
            { key: id, value, headers, partition },
            { key: id, value: null, headers, partition },
          ],
        ],
      ]),
    );
  } finally {
    cluster.close();
  }
}

/** Writes one reply (message record, then the OK end tombstone) with kcat, compressed with `codec`. */
export async function kcatReply(
  bootstrap: string,
  id: string,
  message: string,
  codec: string,
  partition = 0,
): Promise<void> {
  const value = latin1(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message })));
  const headers = ["-H", `zilla:correlation-id=${id}`];
  await kcatWrite(bootstrap, replyTopic, partition, codec, headers, `${id}:${value}|${id}:|`);
}

/**
 * kcat as a producer: records "key:value" separated by "|" (protobuf bytes hold newlines),
 * an empty value sent as null (-Z). A run is usually one batch; under load librdkafka may
 * send it as several (and a small one uncompressed), so tests only count on "some".
 */
async function kcatWrite(
  bootstrap: string,
  topic: string,
  partition: number,
  codec: string,
  headers: string[],
  input: string,
): Promise<void> {
  await kcat(
    [
      "-P",
      "-b",
      bootstrap,
      "-t",
      topic,
      "-p",
      String(partition),
      "-K:",
      "-D",
      "|",
      "-Z",
      "-X",
      `compression.codec=${codec}`,
      ...headers,
    ],
    Buffer.from(input, "latin1"),
  );
}

/** A message long enough that librdkafka's compression pays (it sends it plain otherwise). */
export function longMessage(tag: string): string {
  return `${tag} ${"compressible ".repeat(8)}`.slice(0, 120);
}

/** Breaks a stored batch's CRC: one flipped byte in its records. */
export function breakCrc(batch: Uint8Array): void {
  batch[batch.length - 1] = (batch[batch.length - 1] as number) ^ 0x5a;
}

/** Gives a stored batch a codec id Kafka does not define (CRC made right, so only the codec is wrong). */
export function unknownCodec(id: number): (batch: Uint8Array) => void {
  return (batch) => {
    const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    view.setInt16(21, (view.getInt16(21) & ~7) | id);
    view.setUint32(17, crc32c(batch, 21, batch.length));
  };
}
