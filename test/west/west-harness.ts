/**
 * Drives west the way north would, over real sockets: the embedded broker, the echo
 * upstream, request records written by a kafkajs producer with the record contract, and
 * reply records read back by a kafkajs consumer.
 */
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Admin, type Consumer, Kafka, logLevel, type Producer } from "kafkajs";
import { vi } from "vitest";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, type BrokerOptions, startBroker } from "../../src/broker/broker.ts";
import {
  defaultCorrelationHeaders,
  defaultKafkaGrpcOptions,
  type ProduceWith,
  type WestConfig,
} from "../../src/config/types.ts";
import { STATUS } from "../../src/kafka/header-names.ts";
import { createKafka, type Kafka as GatewayKafka } from "../../src/kafka/kafka-client.ts";
import {
  type ContractRecord,
  parseReplyHeaders,
  type RecordHeader,
  requestHeaders,
} from "../../src/kafka/record-contract.ts";
import { createLogger, silentLogger } from "../../src/ops/logger.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { startWest, type West, type WestTuning } from "../../src/west/remote-server.ts";
import { createPartitioner, toKafkaMessage } from "../support/kafkajs.ts";

export const requestTopic = "echo-requests";
export const replyTopic = "echo-responses";
export const service = "grpc.examples.echo.Echo";
export const namespace = "example";
export const binding = "west_kafka_grpc_remote_server";
export const groupId = `zilla:${namespace}-${binding}`;

const logger = process.env.GATEWAY_TEST_LOG ? createLogger("debug") : silentLogger;

/** Group timings short enough that joins and rebalances take well under a second. */
export const fastTuning: WestTuning = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 200,
  rebalanceTimeoutMs: 10_000,
  commitIntervalMs: 200,
  closeGraceMs: 2_000,
};

/** The protobuf bytes of EchoRequest{message}. */
export function echoBytes(message: string): Uint8Array {
  return toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));
}

/** The text of an EchoResponse's bytes. */
export function echoText(bytes: Uint8Array | null): string {
  return bytes === null ? "" : fromBinary(EchoResponseSchema, bytes).message;
}

/** West's config for one upstream: every echo method, the example's topics. */
export function westConfig(authority: string, change?: (c: WestConfig) => void): WestConfig {
  const config: WestConfig = {
    binding,
    routes: [
      {
        when: [{ topic: requestTopic, replyTo: replyTopic, method: `${service}/*` }],
        with: { scheme: "http", authority },
      },
    ],
    options: { ...defaultKafkaGrpcOptions(), acks: "leader_only" },
  };
  change?.(config);
  return config;
}

export interface ReplyRecord {
  key: string | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
  partition: number;
}

export interface RequestSpec {
  id?: string;
  method?: string;
  /** Message texts (EchoRequest) or raw bytes. */
  messages?: (string | Uint8Array)[];
  /** Write the end tombstone (default true). */
  end?: boolean;
  deadlineMs?: number;
  /** North's tag for one caller's attempt of a keyed call (`zilla:attempt`). */
  attemptId?: string;
  metadata?: [string, string][];
  /** The request partition (default: murmur2 of the id, as north writes it). */
  partition?: number;
}

/** A kafkajs client and a reply reader on some cluster, and west members started on it. */
export interface WestClients {
  kafka: Kafka;
  /** The gateway's own Kafka handle for the cluster (what west members use). */
  westKafka: GatewayKafka;
  admin: Admin;
  /** Reply records by correlation id, in partition order. */
  replies: Map<string, ReplyRecord[]>;
  /** Starts a west member with `fastTuning` (overridden by `tuning`). */
  startWest(
    authority: string,
    change?: (c: WestConfig) => void,
    tuning?: WestTuning,
  ): Promise<West>;
  /** Writes a call's request records exactly as north would; returns its correlation id. */
  request(spec: RequestSpec): Promise<string>;
  /** Writes raw records to the request topic (to `partition`, else by key). */
  produce(records: ContractRecord[], partition?: number): Promise<void>;
  /** Waits until `id` has `ends` reply tombstones; returns its reply records. */
  reply(id: string, ends?: number, timeoutMs?: number): Promise<ReplyRecord[]>;
  /** The group's committed offset of a request partition ("-1" when none). */
  committed(partition?: number): Promise<bigint>;
  close(): Promise<void>;
}

/** A broker with the request and reply topics, a kafkajs client and a reply reader. */
export interface WestBench extends WestClients {
  broker: Broker;
}

/**
 * Starts a broker whose topics have `partitions` partitions, and the reply reader;
 * `broker` adds options (Kafka's batch limit, say).
 */
export async function startWestBench(
  partitions = 3,
  broker_?: Omit<BrokerOptions, "port" | "defaultPartitions">,
): Promise<WestBench> {
  const broker = await startBroker({ ...broker_, port: 0, defaultPartitions: partitions });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  const clients = await connectWestClients([broker.bootstrap]);
  return {
    ...clients,
    broker,
    async close() {
      await clients.close();
      await broker.close();
    },
  };
}

/**
 * The clients of a west bench on a cluster that already has the request and reply topics
 * (the embedded broker, or another Kafka such as librdkafka's mock cluster).
 */
export async function connectWestClients(bootstrap: string[]): Promise<WestClients> {
  const kafka = new Kafka({
    clientId: "west-test",
    brokers: bootstrap,
    logLevel: logLevel.NOTHING,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
  const westKafka = createKafka({ servers: bootstrap }, "west-under-test");
  const registry = await loadServiceRegistry();
  const producer: Producer = kafka.producer({ createPartitioner });
  const admin = kafka.admin();
  const reader: Consumer = kafka.consumer({
    groupId: `reply-reader-${randomUUID()}`,
    heartbeatInterval: 200,
    maxWaitTimeInMs: 100,
  });
  await Promise.all([producer.connect(), admin.connect(), reader.connect()]);
  const replies = new Map<string, ReplyRecord[]>();
  const listeners = new Set<() => void>();
  await reader.subscribe({ topic: replyTopic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ partition, message }) => {
      const headers: RecordHeader[] = [];
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        for (const v of Array.isArray(value) ? value : [value]) {
          if (v !== undefined) headers.push([name, v.toString()]);
        }
      }
      const id = message.key?.toString() ?? "";
      const list = replies.get(id) ?? [];
      list.push({
        key: message.key?.toString() ?? null,
        value: message.value ? new Uint8Array(message.value) : null,
        headers,
        partition,
      });
      replies.set(id, list);
      for (const l of listeners) l();
    },
  });
  const wests: West[] = [];

  const produce = async (records: ContractRecord[], partition?: number) => {
    await producer.send({
      topic: requestTopic,
      acks: -1,
      messages: records.map((r) => ({
        ...toKafkaMessage(r),
        ...(partition === undefined ? {} : { partition }),
      })),
    });
  };

  return {
    kafka,
    westKafka,
    admin,
    replies,
    async startWest(authority, change, tuning) {
      const west = await startWest({
        config: westConfig(authority, change),
        namespace,
        kafka: westKafka,
        registry,
        logger,
        tuning: { ...fastTuning, ...tuning },
      });
      wests.push(west);
      return west;
    },
    async request(spec) {
      const id = spec.id ?? `${randomUUID()}-test`;
      await produce(requestRecords({ ...spec, id }), spec.partition);
      return id;
    },
    produce,
    reply(id, ends = 1, timeoutMs = 20_000) {
      const ended = () =>
        (replies.get(id) ?? []).filter((r) => r.value === null && hasStatus(r)).length >= ends;
      if (ended()) return Promise.resolve(replies.get(id) ?? []);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no reply ${ends} for ${id} within ${timeoutMs} ms`));
        }, timeoutMs);
        function check() {
          if (!ended()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(replies.get(id) ?? []);
        }
        listeners.add(check);
      });
    },
    async committed(partition = 0) {
      const [topic] = await admin.fetchOffsets({ groupId, topics: [requestTopic] });
      const entry = topic?.partitions.find((p) => p.partition === partition);
      return BigInt(entry?.offset ?? "-1");
    },
    async close() {
      await Promise.allSettled(wests.map((w) => w.close(500)));
      await Promise.allSettled([reader.disconnect(), producer.disconnect(), admin.disconnect()]);
    },
  };
}

function hasStatus(record: ReplyRecord): boolean {
  return record.headers.some(([name]) => name === STATUS);
}

/** The records north would write for `spec` (an id of its own when it has none). */
export function requestRecords(spec: RequestSpec): ContractRecord[] {
  const id = spec.id ?? `${randomUUID()}-test`;
  const route: ProduceWith = { capability: "produce", topic: requestTopic, replyTo: replyTopic };
  const headers = requestHeaders({
    route,
    names: defaultCorrelationHeaders,
    service,
    method: spec.method ?? "UnaryEcho",
    correlationId: id,
    deadlineMs: spec.deadlineMs,
    attemptId: spec.attemptId,
    metadata: spec.metadata ?? [],
  });
  const records: ContractRecord[] = (spec.messages ?? []).map((m) => ({
    key: id,
    value: typeof m === "string" ? echoBytes(m) : m,
    headers,
  }));
  if (spec.end ?? true) records.push({ key: id, value: null, headers });
  return records;
}

/** The texts of a reply's messages (EchoResponse), in order. */
export const messagesOf = (records: { value: Uint8Array | null }[]): string[] =>
  records.filter((r) => r.value !== null).map((r) => echoText(r.value));

/** Status code and message of a reply's last tombstone. */
export function endOf(records: ReplyRecord[]): { status?: number; message?: string } {
  const end = records.filter((r) => r.value === null).at(-1);
  if (!end) return {};
  const parsed = parseReplyHeaders(end.headers, defaultCorrelationHeaders);
  return {
    ...(parsed.status !== undefined ? { status: parsed.status } : {}),
    ...(parsed.message !== undefined ? { message: parsed.message } : {}),
  };
}

/** Starts an echo server, or one on a port that is free now (for "upstream down" cases). */
export async function freePort(): Promise<number> {
  const probe = await startEchoServer();
  const port = probe.port;
  await probe.close();
  return port;
}

/** Polls until `check` holds. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

export { type EchoServer, startEchoServer };
