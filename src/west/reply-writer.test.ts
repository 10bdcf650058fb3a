import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { defaultCorrelationHeaders } from "../config/types.ts";
import { createKafka, type Kafka } from "../kafka/kafka-client.ts";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { type ReplyProducer, startReplyProducer } from "../kafka/reply-producer.ts";
import { silentLogger } from "../ops/logger.ts";
import { createReplyWriter } from "./reply-writer.ts";
import { ResponseFields } from "./response-fields.ts";
import type { RunningCall } from "./west-call.ts";

let broker: Broker;
let kafka: Kafka;
let producer: ReplyProducer;
const stopped = { crashed: false, closing: false };

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  broker.createTopic("replies", 1);
  kafka = createKafka({ servers: [broker.bootstrap] }, "reply-writer-test");
  producer = await startReplyProducer(kafka, { acks: "in_sync_replicas", logger: silentLogger });
});

afterAll(async () => {
  await producer?.close();
  await broker?.close();
});

const writer = (keepMaxBytes = 1000) =>
  createReplyWriter({
    producer,
    names: defaultCorrelationHeaders,
    keepMaxBytes,
    crashed: () => stopped.crashed,
    closing: () => stopped.closing,
    logger: silentLogger,
  });

function call(fields: Partial<RunningCall>): RunningCall {
  return {
    id: "c1",
    replyTo: "replies",
    singleReply: false,
    heldReply: undefined,
    abandoned: false,
    reply: [],
    replyCount: 0,
    replyBytes: 0,
    sendFailed: false,
    ...fields,
  } as RunningCall;
}

async function repliesEnd(): Promise<number> {
  const admin = kafkajsFor(kafka).admin();
  await admin.connect();
  const [end] = await admin.fetchTopicOffsets("replies");
  await admin.disconnect();
  return Number(end?.offset ?? 0);
}

describe("createReplyWriter", () => {
  it("holds a single reply's message for its status and keeps the reply for replays", async () => {
    const replies = writer();
    const unary = call({ singleReply: true });
    replies.emit(unary, Uint8Array.of(1), ResponseFields.of({ "x-a": "1" }));
    expect(unary.heldReply?.headers).toEqual([
      ["zilla:correlation-id", "c1"],
      ["meta:x-a", "1"],
    ]);
    const end = replies.endRecord(unary, 0, undefined, [["x-t", "t"]]);
    expect(end.headers).toEqual([
      ["zilla:correlation-id", "c1"],
      ["zilla:status", "0"],
      ["meta:x-t", "t"],
    ]);
    expect(unary.reply).toEqual([unary.heldReply, end]);
    expect(unary.replyCount).toBe(2);
  });

  it("stops keeping a reply once it outgrows what a replay may be", () => {
    const replies = writer(40);
    const streaming = call({ replyTo: "elsewhere" });
    replies.emit(streaming, new Uint8Array(4), undefined);
    expect(streaming.reply).toHaveLength(1);
    replies.emit(streaming, new Uint8Array(40), undefined);
    expect(streaming.reply).toBeUndefined();
    expect(streaming.replyBytes).toBeGreaterThan(40);
  });

  it("writes an answer until acknowledged, through a failed produce", async () => {
    const before = await repliesEnd();
    broker.faults.failNext(ApiKey.Produce, 1, 87); // INVALID_RECORD: the batch fails
    expect(await writer().answer("replies", "c2", 6, "no")).toBe(true);
    expect(await repliesEnd()).toBe(before + 1);
  });

  it("gives up when west stops", async () => {
    stopped.crashed = true;
    expect(await writer().writeReliably("replies", [{ key: "c", value: null, headers: [] }])).toBe(
      false,
    );
    stopped.crashed = false;
  });
});
