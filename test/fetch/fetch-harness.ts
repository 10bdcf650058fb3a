/**
 * A fetch deployment on loopback for the fetch scenarios: the embedded broker, a gRPC
 * server (node:http2 + connectNodeAdapter) whose FanoutService is served by the fetch
 * capability, kafkajs producers, and real Connect gRPC clients.
 *
 * The server passes bytes through: it re-encodes the decoded request (unknown fields kept)
 * for the capability, and decodes each response's bytes into a FanoutMessage, which keeps
 * the message id field as an unknown field and writes it back out.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel, type Message, type Producer } from "kafkajs";
import { vi } from "vitest";
import {
  type FanoutMessage,
  FanoutMessageSchema,
  FanoutService,
} from "../../gen/example/fanout_pb.ts";
import { type Broker, type BrokerOptions, startBroker } from "../../src/broker/broker.ts";
import {
  defaultGrpcKafkaOptions,
  type FetchFilter,
  type FetchWith,
} from "../../src/config/types.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import type { UndecodableWatch } from "../../src/kafka/undecodable-batches.ts";
import {
  createFetchCapability,
  type FetchCapability,
} from "../../src/north/fetch/fetch-capability.ts";
import { decodeMessageId, messageIdToBase64url } from "../../src/north/fetch/message-id.ts";
import { createLogger, silentLogger } from "../../src/ops/logger.ts";

/** Test-only routing: the topic and filters come from request metadata. */
export const topicHeader = "x-test-topic";
export const filtersHeader = "x-test-filters";

export interface FetchHarnessOptions {
  maxLagRecords?: number;
  idleCloseMs?: number;
  /** How the broker is started (e.g. the API versions it advertises). */
  broker?: BrokerOptions;
  /** Where the capability's readers report undecodable batches (and the policy). */
  undecodable?: UndecodableWatch;
}

export interface FetchHarness {
  broker: Broker;
  capability: FetchCapability;
  url: string;
  /** A Connect gRPC client on its own HTTP/2 connection. */
  client(): Client<typeof FanoutService>;
  /** Creates a topic with `partitions` partitions. */
  createTopic(topic: string, partitions: number): void;
  /** Consumer group ids the broker knows. */
  listGroups(): Promise<string[]>;
  /** Produces records (waits for acks from the broker). */
  produce(topic: string, messages: Message[]): Promise<void>;
  close(): Promise<void>;
}

/** Starts broker, fetch capability and gRPC server. */
export async function startFetchHarness(options: FetchHarnessOptions = {}): Promise<FetchHarness> {
  const logger = process.env.GATEWAY_TEST_LOG ? createLogger("debug") : silentLogger;
  const broker = await startBroker({ ...options.broker, port: 0 });
  const gatewayKafka = createKafka(
    { servers: [broker.bootstrap] },
    "fetch-gateway",
    options.undecodable,
  );
  const capability = createFetchCapability({
    kafka: gatewayKafka,
    logger,
    options: defaultGrpcKafkaOptions(),
    ...(options.maxLagRecords !== undefined ? { maxLagRecords: options.maxLagRecords } : {}),
    idleCloseMs: options.idleCloseMs ?? 30_000,
  });
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(FanoutService, {
        async *fanoutServerStream(request, context) {
          const topic = context.requestHeader.get(topicHeader) ?? "";
          const filters = context.requestHeader.get(filtersHeader);
          const route: FetchWith = {
            capability: "fetch",
            topic,
            ...(filters ? { filters: JSON.parse(filters) as FetchFilter[] } : {}),
          };
          const bytes = capability.stream({
            route,
            request: toBinary(EmptySchema, request),
            metadata: context.requestHeader,
            signal: context.signal,
          });
          for await (const message of bytes) yield fromBinary(FanoutMessageSchema, message);
        },
      });
    },
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const testKafka = new Kafka({
    clientId: "fetch-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  let producer: Promise<Producer> | undefined;

  return {
    broker,
    capability,
    url,
    client: () => createClient(FanoutService, createGrpcTransport({ baseUrl: url })),
    createTopic: (topic, partitions) => broker.createTopic(topic, partitions),
    async listGroups() {
      const admin = testKafka.admin();
      await admin.connect();
      try {
        return (await admin.listGroups()).groups.map((g) => g.groupId);
      } finally {
        await admin.disconnect();
      }
    },
    async produce(topic, messages) {
      producer ??= (async () => {
        const p = testKafka.producer({ allowAutoTopicCreation: false });
        await p.connect();
        return p;
      })();
      await (await producer).send({ topic, messages, acks: -1 });
    },
    async close() {
      await capability.close();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (producer) await (await producer).disconnect();
      await broker.close();
    },
  };
}

/** A FanoutMessage's record value: the message text as protobuf bytes. */
export function recordValue(text: string): Buffer {
  return Buffer.from(toBinary(FanoutMessageSchema, create(FanoutMessageSchema, { message: text })));
}

/** The raw message id bytes carried in field 32767 of a received message. */
export function messageIdBytes(message: FanoutMessage, field = 32767): Uint8Array {
  const unknown = message.$unknown?.filter((u) => u.no === field) ?? [];
  if (unknown.length !== 1 || unknown[0]?.wireType !== 2) {
    throw new Error(`expected one length-delimited field ${field}, got ${unknown.length}`);
  }
  const data = unknown[0].data;
  // `data` is the field after its tag: a varint length, then the id bytes.
  let length = 0;
  let scale = 1;
  let at = 0;
  for (;;) {
    const byte = data[at++] ?? 0;
    length += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) break;
  }
  expectLength(data.length - at, length);
  return data.subarray(at);
}

function expectLength(actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`message id length ${actual}, header says ${expected}`);
}

/** The message id of a received message as resume metadata text. */
export function messageIdText(message: FanoutMessage): string {
  return messageIdToBase64url(messageIdBytes(message));
}

/** The positions in a received message's id. */
export function messageIdPositions(message: FanoutMessage): Map<number, number> {
  const positions = decodeMessageId(messageIdBytes(message));
  if (!positions) throw new Error("invalid message id received");
  return positions;
}

export interface OpenStream {
  /** Messages received so far. */
  messages: FanoutMessage[];
  /** Resolves once `count` messages arrived (rejects if the stream ends first). */
  waitFor(count: number, timeoutMs?: number): Promise<FanoutMessage[]>;
  /** Cancels the call. */
  cancel(): void;
  /** Settles when the stream ended: the ConnectError, or undefined for OK. */
  ended: Promise<ConnectError | undefined>;
}

/**
 * Opens a fetch stream and reads it in the background; with `limit`, cancels the call
 * after exactly that many messages.
 */
export function openStream(
  client: Client<typeof FanoutService>,
  headers: Record<string, string>,
  request: Parameters<Client<typeof FanoutService>["fanoutServerStream"]>[0] = {},
  limit?: number,
): OpenStream {
  const controller = new AbortController();
  const messages: FanoutMessage[] = [];
  const listeners = new Set<() => void>();
  let done = false;
  const ended = (async () => {
    try {
      for await (const message of client.fanoutServerStream(request, {
        headers,
        signal: controller.signal,
      })) {
        messages.push(message);
        for (const l of [...listeners]) l();
        if (messages.length === limit) {
          controller.abort();
          break;
        }
      }
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    } finally {
      done = true;
      for (const l of [...listeners]) l();
    }
  })();
  return {
    messages,
    ended,
    cancel: () => controller.abort(),
    waitFor(count, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length >= count) {
            cleanup();
            resolve(messages.slice(0, count));
          } else if (done) {
            cleanup();
            reject(new Error(`stream ended after ${messages.length} of ${count} messages`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out with ${messages.length} of ${count} messages`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** A hand-framed gRPC call over node:http2 that reads only when asked to. */
export interface RawStream {
  /** The next response message, or `undefined` once the stream ended. */
  next(): Promise<FanoutMessage | undefined>;
  /** The call's gRPC status (from trailers, or from headers for a trailers-only answer). */
  status: Promise<{ code: number; message: string }>;
  close(): void;
}

/**
 * Opens a fetch call with a client that applies HTTP/2 flow control: unlike the Connect
 * client (which keeps reading a response stream into memory whether or not the application
 * pulls), it stops reading when the test stops asking, so the server sees a slow client.
 */
export function openRawStream(url: string, headers: Record<string, string>): RawStream {
  const session = http2.connect(url);
  session.on("error", () => {});
  const request = session.request({
    ":method": "POST",
    ":path": "/example.FanoutService/FanoutServerStream",
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
  request.on("error", () => {});
  request.end(Buffer.alloc(5)); // one empty, uncompressed message
  const status = new Promise<{ code: number; message: string }>((resolve) => {
    const settle = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        resolve({ code: Number(h["grpc-status"]), message: String(h["grpc-message"] ?? "") });
      }
    };
    request.on("response", settle);
    request.on("trailers", settle);
    request.on("close", () => resolve({ code: -1, message: "closed without status" }));
  });
  const chunks = request[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buffered = Buffer.alloc(0);
  return {
    status,
    async next() {
      for (;;) {
        if (buffered.length >= 5) {
          const length = buffered.readUInt32BE(1);
          if (buffered.length >= 5 + length) {
            const body = buffered.subarray(5, 5 + length);
            buffered = buffered.subarray(5 + length);
            return fromBinary(FanoutMessageSchema, body);
          }
        }
        const chunk = await chunks.next();
        if (chunk.done) return undefined;
        buffered = Buffer.concat([buffered, chunk.value]);
      }
    },
    close() {
      request.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}

/** Polls `condition` until true or `timeoutMs` passes. */
export async function eventually(
  condition: () => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 20 },
  );
}
