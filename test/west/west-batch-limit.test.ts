/**
 * Kafka refuses a record batch larger than `message.max.bytes` (1,048,588 bytes by default),
 * however small its records. West gathers the replies of a turn into one Produce: replies
 * that fit the limit one by one must not be refused together. The embedded broker enforces
 * Kafka's default here.
 */

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EchoServer,
  endOf,
  messagesOf,
  requestRecords,
  startEchoServer,
  startWestBench,
  type WestBench,
} from "./west-harness.ts";

const kafkaDefaultMaxMessageBytes = 1_048_588;

let bench: WestBench;
let echo: EchoServer;

beforeAll(async () => {
  // One partition: every reply of the test lands in the same partition's batch.
  bench = await startWestBench(1, { maxMessageBytes: kafkaDefaultMaxMessageBytes });
  echo = await startEchoServer();
  await bench.startWest(`127.0.0.1:${echo.port}`);
});

afterAll(async () => {
  await bench?.close();
  await echo?.close();
});

describe("west under Kafka's batch limit", () => {
  it("server.stream.replies.over.the.batch.limit.arrive.in.order", async () => {
    // 12 replies of 200 KiB, sent by the upstream at once: 2.4 MB read by west in a few turns.
    const text = `stream:12:${"x".repeat(200 * 1024)}`;
    const id = await bench.request({ method: "ServerStreamingEcho", messages: [text] });
    const replies = await bench.reply(id, 1, 30_000);
    expect(endOf(replies)).toEqual({ status: 0 });
    const messages = messagesOf(replies);
    expect(messages).toHaveLength(12);
    expect(messages.every((m) => m === text)).toBe(true);
  });

  it("concurrent.unary.replies.over.the.batch.limit.all.succeed", async () => {
    // Each reply fits the limit; six answered in the same turns do not.
    const texts = Array.from({ length: 6 }, (_, i) => `${i}:${"y".repeat(300 * 1024)}`);
    const ids = await Promise.all(texts.map((t) => bench.request({ messages: [t] })));
    const replies = await Promise.all(ids.map((id) => bench.reply(id, 1, 30_000)));
    for (const [i, records] of replies.entries()) {
      expect(endOf(records)).toEqual({ status: 0 });
      expect(messagesOf(records)).toEqual([texts[i]]);
    }
  });

  it("a.reply.message.kafka.refuses.ends.the.call.with.an.error.not.ok", async () => {
    // Three request messages of 400 KiB, each its own batch; the echo joins them into one
    // reply message of 1.2 MB, which no batch can carry under the limit (and too large to
    // keep for a rewrite): the caller must learn that, not get OK without the message.
    const id = `${randomUUID()}-test`;
    const parts = ["a", "b", "c"].map((c) => c.repeat(400 * 1024));
    const records = requestRecords({ id, method: "ClientStreamingEcho", messages: parts });
    for (const record of records) await bench.produce([record]);
    const replies = await bench.reply(id, 1, 30_000);
    const end = endOf(replies);
    expect(end.status).toBe(8); // RESOURCE_EXHAUSTED
    expect(end.message).toMatch(
      /Kafka refused it, MESSAGE_TOO_LARGE \(10\): the topic's max\.message\.bytes/,
    );
    expect(messagesOf(replies)).toEqual([]);
  });

  it("a.call.after.a.refused.reply.is.answered.as.usual", async () => {
    const id = await bench.request({ messages: ["after"] });
    const replies = await bench.reply(id, 1, 30_000);
    expect(endOf(replies)).toEqual({ status: 0 });
    expect(messagesOf(replies)).toEqual(["after"]);
  });
});
