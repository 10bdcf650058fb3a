/**
 * fetch.slow.client: a call that stops reading does not stall the others and does not
 * make the gateway hold records for it; past the lag bound it is ended with
 * RESOURCE_EXHAUSTED and resumes from its last message id without loss or repeats.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { FanoutMessage } from "../../gen/example/fanout_pb.ts";
import {
  type FetchHarness,
  messageIdText,
  openRawStream,
  openStream,
  recordValue,
  startFetchHarness,
  topicHeader,
} from "./fetch-harness.ts";

const maxLagRecords = 50;
const total = 400;
// Big enough that HTTP/2 flow control windows and socket buffers hold only a few dozen.
const padding = "x".repeat(8 * 1024);

let harness: FetchHarness;

beforeAll(async () => {
  harness = await startFetchHarness({ maxLagRecords });
});

afterAll(async () => {
  await harness?.close();
});

test("fetch.slow.client", async () => {
  const topic = "fetch-slow";
  harness.createTopic(topic, 1);
  const headers = { [topicHeader]: topic };
  const fast = [openStream(harness.client(), headers), openStream(harness.client(), headers)];
  const slow = openRawStream(harness.url, headers);
  try {
    await harness.produce(topic, [{ value: recordValue(`0 ${padding}`) }]);
    const first = await slow.next();
    expect(first).toBeDefined();
    const slowMessages: FanoutMessage[] = [first as FanoutMessage];
    // The slow client now stops reading while the topic grows well past the lag bound, at
    // a pace the other clients keep up with (batches well under the bound).
    for (let i = 1; i < total; i += 10) {
      const batch = [];
      for (let j = i; j < Math.min(i + 10, total); j++)
        batch.push({ value: recordValue(`${j} ${padding}`) });
      await harness.produce(topic, batch);
      await Promise.all(fast.map((s) => s.waitFor(Math.min(i + 10, total), 30_000)));
    }
    // The others kept their pace: every record, in order.
    for (const stream of fast) {
      const messages = await stream.waitFor(total, 30_000);
      expect(messages.map((m) => Number(m.message.split(" ")[0]))).toEqual(
        Array.from({ length: total }, (_, i) => i),
      );
    }
    // Nothing is kept for the slow call beyond the ring's bound.
    const stats = harness.capability.stats().topics.find((t) => t.topic === topic);
    expect(stats?.ringRecords).toBeLessThanOrEqual(maxLagRecords);
    expect(stats?.subscriptions).toBe(3);

    // The slow client reads again: what was in flight, then RESOURCE_EXHAUSTED.
    for (;;) {
      const message = await slow.next();
      if (message === undefined) break;
      slowMessages.push(message);
    }
    expect((await slow.status).code).toBe(Code.ResourceExhausted);
    expect(slowMessages.length).toBeLessThan(total - maxLagRecords);

    // It resumes from its last message id: nothing lost, nothing repeated.
    const last = slowMessages[slowMessages.length - 1] as FanoutMessage;
    const resumed = openStream(harness.client(), {
      ...headers,
      "last-message-id": messageIdText(last),
    });
    try {
      const rest = await resumed.waitFor(total - slowMessages.length, 30_000);
      const all = [...slowMessages, ...rest].map((m) => Number(m.message.split(" ")[0]));
      expect(all).toEqual(Array.from({ length: total }, (_, i) => i));
      // It started behind the ring, so it caught up with a reader of its own.
      expect(harness.capability.stats().catchUpReadersStarted).toBe(1);
    } finally {
      resumed.cancel();
      await resumed.ended;
    }
  } finally {
    slow.close();
    for (const stream of fast) stream.cancel();
    await Promise.all(fast.map((s) => s.ended));
  }
});
