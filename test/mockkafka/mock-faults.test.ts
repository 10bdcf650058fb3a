/**
 * The gateway on librdkafka's mock cluster (3 brokers, one partition leader per broker)
 * under the faults a real cluster has: a partition leader that moves while calls run, and
 * bursts of Produce and Fetch errors. No call is lost: every call gets its own answer.
 */
import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MockStack, startMockStack, startUnaryLoad } from "../support/mock-stack.ts";
import { replyTopic, requestTopic } from "../support/stack.ts";

const produceApi = 0;
const fetchApi = 1;
const notLeaderOrFollower = 6;

let stack: MockStack;
let kafka: Kafka;

beforeAll(async () => {
  stack = await startMockStack({ brokers: 3 });
  kafka = new Kafka({
    clientId: "faults",
    brokers: stack.mock.brokers,
    logLevel: logLevel.NOTHING,
  });
}, 60_000);

afterEach(async () => {
  await stack?.mock.clear(produceApi);
  await stack?.mock.clear(fetchApi);
});

afterAll(async () => {
  await stack?.close();
});

/** The request topic's end offsets by partition (kafkajs: ListOffsets below v4). */
async function endOffsets(topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Partition `partition`'s leader as the cluster's metadata says now. */
async function leaderOf(topic: string, partition: number): Promise<number | undefined> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
  } finally {
    await admin.disconnect();
  }
}

describe("gateway on the mock cluster under faults", () => {
  it("loses no call when a request partition's leader moves mid-load", async () => {
    const load = startUnaryLoad(stack.client, "request-leader-move");
    try {
      await load.reached(16);
      const before = await endOffsets(requestTopic);
      await stack.mock.leader(requestTopic, 0, 2);
      expect(await leaderOf(requestTopic, 0)).toBe(2);
      // Until partition 0 has taken new requests at its new leader, and then some more.
      await expect
        .poll(async () => (await endOffsets(requestTopic)).get(0) ?? 0, { timeout: 30_000 })
        .toBeGreaterThan((before.get(0) ?? 0) + 4);
      await load.reached(56);
    } finally {
      const result = await load.stop();
      expect(result.failures).toEqual([]);
      expect(result.answered).toBe(result.sent.length);
      await stack.mock.leader(requestTopic, 0, 1);
    }
  });

  it("loses no reply when a reply partition's leader moves mid-load", async () => {
    const load = startUnaryLoad(stack.client, "reply-leader-move");
    try {
      await load.reached(16);
      const before = await endOffsets(replyTopic);
      await stack.mock.leader(replyTopic, 1, 3);
      await expect
        .poll(async () => (await endOffsets(replyTopic)).get(1) ?? 0, { timeout: 30_000 })
        .toBeGreaterThan((before.get(1) ?? 0) + 4);
      await load.reached(56);
    } finally {
      const result = await load.stop();
      expect(result.failures).toEqual([]);
      expect(result.answered).toBe(result.sent.length);
      await stack.mock.leader(replyTopic, 1, 2);
    }
  });

  it("retries through a burst of Produce errors and answers every call", async () => {
    const load = startUnaryLoad(stack.client, "produce-burst", 4);
    try {
      await load.reached(4);
      await stack.mock.errors(produceApi, notLeaderOrFollower, 5);
      await load.reached(24);
    } finally {
      const result = await load.stop();
      expect(result.failures).toEqual([]);
    }
    // The burst went to the gateway's produces: an independent producer that does not retry
    // now gets through at once.
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      const [sent] = await producer.send({
        topic: "burst-check",
        acks: 1,
        messages: [{ value: "after the burst" }],
      });
      expect(sent?.errorCode).toBe(0);
    } finally {
      await producer.disconnect();
    }
  });

  it("retries through a burst of Fetch errors and answers every call", async () => {
    const seen = stack.logs.length;
    await stack.mock.errors(fetchApi, notLeaderOrFollower, 5);
    const load = startUnaryLoad(stack.client, "fetch-burst", 4);
    try {
      await load.reached(16);
    } finally {
      const result = await load.stop();
      expect(result.failures).toEqual([]);
    }
    // The errors reached the gateway's fetch loops, which said so and read on.
    const refused = stack.logs
      .slice(seen)
      .filter((l) => /fetch from broker \d+ failed; retrying/.test(l.msg));
    expect(refused.length).toBeGreaterThan(0);
  });
});
