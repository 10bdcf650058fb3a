/**
 * North on loopback for scenario tests: the embedded broker, north from its real entry
 * point, a Connect gRPC client (HTTP/2), and a far side that answers request records: the
 * real west with the echo upstream (default), or the kafkajs responder standing in for it.
 * Either way a kafkajs consumer keeps every request record north wrote (`responder.seen`).
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel } from "kafkajs";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, type BrokerOptions, startBroker } from "../../src/broker/broker.ts";
import type { NorthConfig } from "../../src/config/types.ts";
import { createKafka, type Kafka as GatewayKafka } from "../../src/kafka/kafka-client.ts";
import type { RecordHeader } from "../../src/kafka/record-contract.ts";
import { type North, type StartNorthOptions, startNorth } from "../../src/north/north-server.ts";
import { createLogger, type Logger, silentLogger } from "../../src/ops/logger.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { startWest, type West } from "../../src/west/remote-server.ts";
import {
  exampleNorthConfig,
  exampleWestConfig,
  replyTopic,
  requestTopic,
} from "../support/example-config.ts";
import { headersFromKafka } from "../support/kafkajs.ts";
import { type Responder, startResponder } from "./kafka-responder.ts";

// North tests import the example's config and topics with the fixture.
export {
  exampleNorthConfig,
  exampleWestConfig,
  replyTopic,
  requestTopic,
} from "../support/example-config.ts";
export const partitions = 3;

export const testLogger: Logger = process.env.GATEWAY_TEST_LOG
  ? createLogger("debug")
  : silentLogger;

/** A started north with its Connect client. */
export async function startTestNorth(
  bootstrap: string,
  config: NorthConfig = exampleNorthConfig(),
  kafka: GatewayKafka = createKafka({ servers: [bootstrap] }, "north-test"),
  extra: Partial<StartNorthOptions> = {},
): Promise<{ north: North; client: Client<typeof Echo>; url: string }> {
  const north = await startNorth({
    config,
    kafka,
    registry: await loadServiceRegistry(),
    logger: testLogger,
    ...extra,
  });
  const url = `http://127.0.0.1:${north.ports[0]}`;
  const client = createClient(Echo, createGrpcTransport({ baseUrl: url }));
  return { north, client, url };
}

/** The far side: real west + echo upstream, or the kafkajs responder. */
export type FarSide = "west" | "responder";

export interface NorthFixture {
  broker: Broker;
  /** Records every request record; answers them only when the far side is "responder". */
  responder: Responder;
  /** The echo upstream behind west (far side "west" only). */
  echo: EchoServer | undefined;
  north: North;
  client: Client<typeof Echo>;
  url: string;
  kafka: Kafka;
  close(): Promise<void>;
}

/** West and the echo upstream on `bootstrap`. */
export async function startWestAndEcho(
  bootstrap: string,
): Promise<{ west: West; echo: EchoServer }> {
  const echo = await startEchoServer();
  const west = await startWest({
    config: exampleWestConfig(echo.port),
    namespace: "north-test",
    kafka: createKafka({ servers: [bootstrap] }, "west-test"),
    registry: await loadServiceRegistry(),
    logger: testLogger,
  });
  return { west, echo };
}

/**
 * Broker, far side and north, with `configure` applied to the example north config;
 * `brokerOptions` adds to the broker's (Kafka's batch limit, say).
 */
export async function startNorthFixture(
  configure: (config: NorthConfig) => void = () => {},
  far: FarSide = "west",
  extra: Partial<StartNorthOptions> = {},
  brokerOptions: Omit<BrokerOptions, "port" | "defaultPartitions"> = {},
): Promise<NorthFixture> {
  const broker = await startBroker({
    ...brokerOptions,
    port: 0,
    defaultPartitions: partitions,
  });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  const responder = await startResponder({
    bootstrap: broker.bootstrap,
    topic: requestTopic,
    reply: far === "responder",
  });
  const westAndEcho = far === "west" ? await startWestAndEcho(broker.bootstrap) : undefined;
  const config = exampleNorthConfig();
  configure(config);
  const { north, client, url } = await startTestNorth(broker.bootstrap, config, undefined, extra);
  const kafka = new Kafka({
    clientId: "north-test-reader",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  return {
    broker,
    responder,
    echo: westAndEcho?.echo,
    north,
    client,
    url,
    kafka,
    async close() {
      await north.close(500);
      await westAndEcho?.west.close(500);
      await westAndEcho?.echo.close();
      await responder.close();
      await broker.close();
    },
  };
}

export interface TopicRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** Every record of `topic` from the beginning, read with a fresh kafkajs consumer group. */
export async function readTopic(kafka: Kafka, topic: string): Promise<TopicRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const records: TopicRecord[] = [];
  if (total === 0) return records;
  const consumer = kafka.consumer({
    groupId: `north-test-read-${Math.random().toString(16).slice(2)}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${records.length}/${total}`)), 15_000);
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          records.push({
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? null,
            value: message.value,
            headers: headersFromKafka(message.headers),
          });
          if (records.length >= total) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return records;
}

/** The value of a record header, if present. */
export function header(headers: readonly RecordHeader[], name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1];
}
