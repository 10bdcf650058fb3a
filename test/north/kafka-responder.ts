/**
 * A stand-in for west in north-only scenarios: a real kafkajs consumer reads request records
 * and a real kafkajs producer writes the reply records the echo upstream would cause, with
 * the echo server's hooks (`error:`, `delay:`, `stream:`, `meta:`). It also keeps every
 * request record it read, so tests can check what north wrote; with `reply: false` it only
 * does that (in its own consumer group, next to a real west).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { vi } from "vitest";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import {
  type ParsedRequest,
  parseRequestHeaders,
  type RecordHeader,
  replyEndHeaders,
  replyHeaders,
} from "../../src/kafka/record-contract.ts";
import { parseEchoHooks } from "../../src/upstream/echo-hooks.ts";
import { headersFromKafka, toKafkaMessage } from "../support/kafkajs.ts";

export interface SeenRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

export interface Responder {
  /** Request records read, in read order. */
  seen: SeenRecord[];
  /** Resolves once a record matching `predicate` was read (polls; generous timeout). */
  waitFor(predicate: (r: SeenRecord) => boolean, timeoutMs?: number): Promise<SeenRecord>;
  close(): Promise<void>;
}

interface CallState {
  request: ParsedRequest;
  messages: string[];
  /** Reply records leave in this order. */
  chain: Promise<void>;
  repliedFirst: boolean;
}

const names = defaultCorrelationHeaders;

/** Starts the responder on `topic`, resolving once its group has its assignment. */
export async function startResponder(opts: {
  bootstrap: string;
  topic: string;
  groupId?: string;
  /** false: only record what north wrote (west answers). Default true. */
  reply?: boolean;
}): Promise<Responder> {
  const replying = opts.reply ?? true;
  const kafka = new Kafka({
    clientId: "north-test-responder",
    brokers: [opts.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const producer: Producer = kafka.producer();
  await producer.connect();
  const consumer = kafka.consumer({
    groupId: opts.groupId ?? `north-test-responder-${Math.random().toString(16).slice(2)}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
  const seen: SeenRecord[] = [];
  const calls = new Map<string, CallState>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const reply = async (
    state: CallState,
    id: string,
    value: Uint8Array | null,
    headers: RecordHeader[],
  ) => {
    if (closed || state.request.replyTo === undefined) return;
    await producer.send({
      topic: state.request.replyTo,
      acks: 1,
      messages: [toKafkaMessage({ key: id, value, headers })],
    });
  };

  const echoMeta = (state: CallState, meta: boolean): [string, string][] => {
    const out: [string, string][] = [["x-echo", "1"]];
    if (meta) for (const [n, v] of state.request.metadata) if (n.startsWith("x-")) out.push([n, v]);
    return out;
  };

  const sendMessage = async (state: CallState, id: string, text: string, meta: boolean) => {
    const headers = replyHeaders(names, id, state.repliedFirst ? [] : echoMeta(state, meta));
    state.repliedFirst = true;
    const value = toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: text }));
    await reply(state, id, value, headers);
  };

  const finish = async (state: CallState, id: string) => {
    const method = state.request.method;
    const first = state.messages[0] ?? "";
    const hooks = parseEchoHooks(first);
    if (hooks.delayMs !== undefined) await sleep(hooks.delayMs);
    const trailers: [string, string][] = hooks.meta ? [["x-trailer", "t"]] : [];
    if (hooks.error) {
      const meta = state.repliedFirst ? trailers : [...echoMeta(state, hooks.meta), ...trailers];
      const end = replyEndHeaders(names, id, hooks.error.code, hooks.error.text, meta);
      await reply(state, id, null, end);
      return;
    }
    if (method === "UnaryEcho") await sendMessage(state, id, first, hooks.meta);
    if (method === "ClientStreamingEcho") {
      await sendMessage(state, id, state.messages.join(","), hooks.meta);
    }
    if (method === "ServerStreamingEcho") {
      for (let i = 0; i < (hooks.streamCount ?? 10); i++) {
        await sendMessage(state, id, first, hooks.meta);
      }
    }
    await reply(state, id, null, replyEndHeaders(names, id, 0, undefined, trailers));
  };

  await new Promise<void>((resolve, reject) => {
    consumer.on(consumer.events.GROUP_JOIN, () => resolve());
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const headers = headersFromKafka(message.headers);
          seen.push({
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? null,
            value: message.value,
            headers,
          });
          const request = parseRequestHeaders(headers, names);
          const id = request.correlationId;
          if (id === undefined || !replying) return;
          let state = calls.get(id);
          if (!state) {
            state = { request, messages: [], chain: Promise.resolve(), repliedFirst: false };
            calls.set(id, state);
          }
          const s = state;
          if (message.value !== null) {
            const text = fromBinary(EchoRequestSchema, message.value).message;
            s.messages.push(text);
            if (request.method === "BidirectionalStreamingEcho") {
              const hooks = parseEchoHooks(text);
              s.chain = s.chain.then(async () => {
                if (hooks.delayMs !== undefined) await sleep(hooks.delayMs);
                await sendMessage(s, id, text, hooks.meta);
              });
            }
          } else {
            calls.delete(id);
            s.chain = s.chain.then(() => finish(s, id));
          }
          s.chain = s.chain.catch(() => {});
        },
      })
      .catch(reject);
  });

  return {
    seen,
    async waitFor(predicate, timeoutMs = 15_000) {
      return vi.waitFor(
        () => {
          const found = seen.find(predicate);
          if (!found) throw new Error("responder: expected record not seen");
          return found;
        },
        { timeout: timeoutMs, interval: 25 },
      );
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}
