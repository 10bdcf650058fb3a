import type { Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { silentLogger } from "../ops/logger.ts";
import { createKafka, type Kafka } from "./kafka-client.ts";
import { murmur2 } from "./murmur2-partitioner.ts";
import { type ReplyRecord, startReplyReader } from "./reply-reader.ts";

const topic = "replies";
let broker: Broker;
let kafka: Kafka;
let producer: Producer;

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  broker.createTopic(topic, 4);
  kafka = createKafka({ servers: [broker.bootstrap] }, "reply-reader-test");
  producer = kafkajsFor(kafka).producer();
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await broker?.close();
});

/** Produces one reply record per (partition, id); `end` makes it a tombstone. */
function produce(partition: number, id: string, end = false, t = topic) {
  return producer.send({
    topic: t,
    acks: 1,
    messages: [
      {
        partition,
        key: id,
        value: end ? null : `for ${id}`,
        headers: { "zilla:correlation-id": id, ...(end ? { "zilla:status": "0" } : {}) },
      },
    ],
  });
}

/** A waiter that collects records and resolves once `count` arrived. */
function collector(count: number) {
  const records: ReplyRecord[] = [];
  let done: () => void = () => {};
  const complete = new Promise<void>((resolve) => (done = resolve));
  return {
    records,
    complete,
    waiter: {
      onRecord(r: ReplyRecord) {
        records.push(r);
        if (records.length === count) done();
      },
      onFailure() {},
    },
  };
}

describe("startReplyReader", () => {
  test("reads every partition from the position at start, dispatching by correlation id", async () => {
    // Replies produced before the reader starts are history: nobody can wait for them.
    await produce(0, "old");
    const reader = await startReplyReader({
      kafka,
      logger: silentLogger,
      topics: [topic],
      correlationIdHeader: "zilla:correlation-id",
    });
    try {
      const a = collector(2);
      const b = collector(1);
      const c = collector(1);
      reader.register("a", a.waiter);
      reader.register("b", b.waiter);
      reader.register("c", c.waiter);
      expect(reader.waiting).toBe(3);
      // Produced right after start resolved, on every partition: none may be missed.
      await produce(3, "a");
      await produce(1, "b", true);
      await produce(2, "nobody");
      await produce(0, "c", true);
      await produce(3, "a", true);
      await Promise.all([a.complete, b.complete, c.complete]);
      expect(a.records.map((r) => r.value === null)).toEqual([false, true]);
      expect(Buffer.from(a.records[0]?.value ?? []).toString()).toBe("for a");
      expect(a.records[1]?.headers).toContainEqual(["zilla:status", "0"]);
      expect(b.records.map((r) => r.partition)).toEqual([1]);
      expect(c.records.map((r) => r.partition)).toEqual([0]);
      // "nobody" was read and dropped; "old" was never read at all.
      await waitUntil(() => reader.dropped >= 1);
      expect(reader.dropped).toBe(1);
    } finally {
      await reader.close();
    }
  });

  test("calls sharing a correlation id all get the reply; unregister stops delivery", async () => {
    const reader = await startReplyReader({
      kafka,
      logger: silentLogger,
      topics: [topic],
      correlationIdHeader: "zilla:correlation-id",
    });
    try {
      const first = collector(2);
      const second = collector(2);
      const gone = collector(1);
      reader.register("shared", first.waiter);
      reader.register("shared", second.waiter);
      reader.register("shared", gone.waiter)();
      expect(reader.waiting).toBe(2);
      await produce(2, "shared");
      await produce(2, "shared", true);
      await Promise.all([first.complete, second.complete]);
      expect(second.records.map((r) => r.offset)).toEqual(first.records.map((r) => r.offset));
      expect(gone.records).toHaveLength(0);
    } finally {
      await reader.close();
    }
  });

  test("creates missing reply topics, joins no consumer group, fails waiters on close", async () => {
    const reader = await startReplyReader({
      kafka,
      logger: silentLogger,
      topics: ["replies-created-on-start"],
      correlationIdHeader: "zilla:correlation-id",
    });
    const c = collector(1);
    reader.register("x", c.waiter);
    await produce(0, "x", false, "replies-created-on-start");
    await c.complete;
    const admin = kafkajsFor(kafka).admin();
    await admin.connect();
    try {
      // Assigned reads: nothing for the broker to keep after this instance goes away.
      expect((await admin.listGroups()).groups).toEqual([]);
      let failure: Error | undefined;
      reader.register("late", { onRecord() {}, onFailure: (e) => (failure = e) });
      await reader.close();
      // Waiters still registered learn that no reply will come.
      expect(failure?.message).toMatch(/closed/);
    } finally {
      await admin.disconnect();
    }
  });
});

describe("a share of the partitions", () => {
  const partitionOf = (id: string, count: number) =>
    (murmur2(new TextEncoder().encode(id)) & 0x7fffffff) % count;
  /** An id (as an idempotency key would fix it) whose partition among 4 is `partition`. */
  const idOn = (partition: number) => {
    for (let i = 0; ; i++) if (partitionOf(`fixed-${i}`, 4) === partition) return `fixed-${i}`;
  };

  test("reads what it owns, places new ids there, and reads another partition only while a call waits on it", async () => {
    const reader = await startReplyReader({
      kafka,
      logger: silentLogger,
      topics: [topic],
      correlationIdHeader: "zilla:correlation-id",
      partitions: [0, 1],
      partitionLingerMs: 100,
    });
    try {
      expect(reader.partitions()).toEqual([{ topic, count: 4, read: [0, 1], owned: [0, 1] }]);
      const choose = reader.uuidChooser(topic);
      for (let i = 0; i < 50; i++) {
        const id = `${choose?.("digest")}-digest`;
        expect([0, 1]).toContain(partitionOf(id, 4));
      }
      // An id fixed on partition 3: read from before its registration, while it waits.
      const fixed = idOn(3);
      const c = collector(2);
      const unregister = reader.register(fixed, c.waiter, topic);
      expect(reader.partitions()[0]?.read).toEqual([0, 1, 3]);
      await produce(3, fixed);
      await produce(3, fixed, true);
      await c.complete;
      unregister();
      await waitUntil(() => reader.partitions()[0]?.read.length === 2);
      expect(reader.partitions()[0]?.read).toEqual([0, 1]);
      // Read again later, it starts where it stopped: nothing is handed over twice.
      const again = collector(1);
      reader.register(fixed, again.waiter, topic);
      await produce(3, fixed, true);
      await again.complete;
      expect(again.records.map((r) => r.offset)).toEqual([
        String(Number(c.records[1]?.offset) + 1),
      ]);
    } finally {
      await reader.close();
    }
  });
});

test("creates its reply topics with CreateTopics where the broker does not auto-create", async () => {
  const strict = await startBroker({ port: 0, autoCreateTopics: false, defaultPartitions: 2 });
  const strictKafka = createKafka({ servers: [strict.bootstrap] }, "strict-test");
  const admin = kafkajsFor(strictKafka).admin();
  try {
    const reader = await startReplyReader({
      kafka: strictKafka,
      logger: silentLogger,
      topics: ["replies-strict"],
      correlationIdHeader: "zilla:correlation-id",
    });
    await admin.connect();
    const [metadata] = (await admin.fetchTopicMetadata({ topics: ["replies-strict"] })).topics;
    expect(metadata?.partitions).toHaveLength(2);
    await reader.close();
  } finally {
    await admin.disconnect();
    await strict.close();
  }
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error("condition not met in time");
    },
    { timeout: timeoutMs, interval: 20 },
  );
}
