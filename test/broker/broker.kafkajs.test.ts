/**
 * The embedded broker with a real kafkajs 2.2.4 client over loopback: idempotent produce,
 * record round trips byte for byte, admin, and consumer long-poll wake-up.
 */
import { type Consumer, type EachMessagePayload, Kafka, logLevel, type Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";

let broker: Broker;
let kafka: Kafka;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  kafka = new Kafka({
    clientId: "broker-kafkajs-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 3, initialRetryTime: 100 },
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await broker?.close();
});

async function producer(options: Parameters<Kafka["producer"]>[0] = {}): Promise<Producer> {
  const p = kafka.producer(options);
  await p.connect();
  cleanups.push(() => p.disconnect());
  return p;
}

/** Runs a consumer from the beginning of `topic` and collects messages until `count`. */
async function consume(
  topic: string,
  count: number,
  groupId: string,
): Promise<{ consumer: Consumer; messages: EachMessagePayload[] }> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 });
  cleanups.push(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const messages: EachMessagePayload[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${messages.length} of ${count} messages`)),
      20_000,
    );
    consumer
      .run({
        eachMessage: async (payload) => {
          messages.push(payload);
          if (messages.length === count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  return { consumer, messages };
}

describe("kafkajs against the embedded broker", () => {
  it("delivers an idempotent acks=-1 producer's batches exactly once, in order", async () => {
    const topic = "idempotent";
    broker.createTopic(topic, 1);
    const p = await producer({ idempotent: true, maxInFlightRequests: 1 });
    const sent: string[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const messages = Array.from({ length: 10 }, (_, i) => ({ value: `b${batch}-m${i}` }));
      sent.push(...messages.map((m) => m.value));
      const [meta] = await p.send({ topic, acks: -1, messages });
      expect(meta?.errorCode).toBe(0);
      expect(meta?.baseOffset).toBe(String(batch * 10));
    }
    const { consumer, messages } = await consume(topic, sent.length, "idempotent-reader");
    expect(messages.map((m) => m.message.value?.toString())).toEqual(sent);
    expect(messages.map((m) => Number(m.message.offset))).toEqual(sent.map((_, i) => i));
    // Nothing beyond what was sent: the log ends exactly there.
    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    expect(offsets).toEqual([
      expect.objectContaining({ partition: 0, offset: String(sent.length), low: "0" }),
    ]);
    await consumer.disconnect();
  });

  it("round-trips headers, binary values, null values and null keys byte for byte", async () => {
    const topic = "round-trip";
    broker.createTopic(topic, 1);
    const binary = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x0d, 0x7f]);
    const p = await producer();
    await p.send({
      topic,
      acks: 1,
      messages: [
        {
          key: "k1",
          value: "v1",
          headers: { a: ["1", "2"], bin: binary, empty: "" },
        },
        { key: null, value: null, headers: { "zilla:correlation-id": "abc" } },
        { key: binary, value: binary },
        { key: "", value: "" },
      ],
    });
    const { consumer, messages } = await consume(topic, 4, "round-trip-reader");
    const [m0, m1, m2, m3] = messages.map((m) => m.message);
    expect(m0?.key).toEqual(Buffer.from("k1"));
    expect(m0?.value).toEqual(Buffer.from("v1"));
    expect(m0?.headers?.a).toEqual([Buffer.from("1"), Buffer.from("2")]);
    expect(m0?.headers?.bin).toEqual(binary);
    expect(m0?.headers?.empty).toEqual(Buffer.alloc(0));
    expect(m1?.key).toBeNull();
    expect(m1?.value).toBeNull();
    expect(m1?.headers?.["zilla:correlation-id"]).toEqual(Buffer.from("abc"));
    expect(m2?.key).toEqual(binary);
    expect(m2?.value).toEqual(binary);
    expect(m3?.key).toEqual(Buffer.alloc(0));
    expect(m3?.value).toEqual(Buffer.alloc(0));
    await consumer.disconnect();
  });

  it("stores acks=0 and acks=1 sends, and lists offsets earliest, latest and by time", async () => {
    const topic = "acks";
    broker.createTopic(topic, 1);
    const p = await producer();
    await p.send({ topic, acks: 0, messages: [{ value: "a", timestamp: "1000" }] });
    await p.send({ topic, acks: 0, messages: [{ value: "b", timestamp: "2000" }] });
    const [meta] = await p.send({ topic, acks: 1, messages: [{ value: "c", timestamp: "3000" }] });
    // acks=0 gets no answer, but the records are there: this one lands after them.
    expect(meta?.baseOffset).toBe("2");
    const admin = kafka.admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    expect(await admin.fetchTopicOffsets(topic)).toEqual([
      expect.objectContaining({ partition: 0, low: "0", high: "3", offset: "3" }),
    ]);
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, 1500)).toEqual([
      { partition: 0, offset: "1" },
    ]);
  });

  it("creates, lists and deletes topics with the admin client", async () => {
    const admin = kafka.admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    expect(
      await admin.createTopics({
        topics: [
          { topic: "admin-a", numPartitions: 3 },
          { topic: "admin-b", numPartitions: 1 },
        ],
      }),
    ).toBe(true);
    // Already there: kafkajs reports false rather than failing.
    expect(await admin.createTopics({ topics: [{ topic: "admin-a", numPartitions: 3 }] })).toBe(
      false,
    );
    const creationError = async (topic: string, replicationFactor?: number) => {
      const failure = await admin
        .createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor }] })
        .then(
          () => undefined,
          (err: { errors?: { type?: string }[] }) => err,
        );
      return failure?.errors?.[0]?.type;
    };
    expect(await creationError("admin-c", 3)).toBe("INVALID_REPLICATION_FACTOR");
    expect(await creationError("bad name!")).toBe("INVALID_TOPIC_EXCEPTION");
    expect(await admin.listTopics()).toEqual(expect.arrayContaining(["admin-a", "admin-b"]));
    const metadata = await admin.fetchTopicMetadata({ topics: ["admin-a"] });
    expect(metadata.topics[0]?.partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
    expect(metadata.topics[0]?.partitions[0]).toMatchObject({ leader: 1, replicas: [1], isr: [1] });
    await admin.deleteTopics({ topics: ["admin-a"] });
    const after = await admin.listTopics();
    expect(after).not.toContain("admin-a");
    expect(after).toContain("admin-b");
    const cluster = await admin.describeCluster();
    expect(cluster).toMatchObject({ controller: 1, brokers: [{ nodeId: 1, port: broker.port }] });
    expect(cluster.clusterId).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it("wakes a consumer waiting on an empty partition as soon as a record arrives", async () => {
    const topic = "wake-up";
    broker.createTopic(topic, 1);
    const consumer = kafka.consumer({ groupId: "wake-up-reader", maxWaitTimeInMs: 5000 });
    cleanups.push(() => consumer.disconnect());
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const joined = new Promise<void>((resolve) => {
      consumer.on(consumer.events.GROUP_JOIN, () => resolve());
    });
    let sentAt = 0;
    const delivered = new Promise<number>((resolve) => {
      consumer
        .run({
          eachMessage: async () => {
            resolve(Date.now() - sentAt);
          },
        })
        .catch(() => {});
    });
    await joined;
    // Once the consumer's long poll on the empty partition is parked at the broker.
    const fetches = broker.faults.requests(ApiKey.Fetch);
    await vi.waitFor(() => expect(broker.faults.requests(ApiKey.Fetch)).toBeGreaterThan(fetches));
    const p = await producer();
    sentAt = Date.now();
    await p.send({ topic, acks: 1, messages: [{ value: "wake" }] });
    const latencyMs = await delivered;
    expect(latencyMs).toBeLessThan(1000);
    await consumer.disconnect();
  });
});
