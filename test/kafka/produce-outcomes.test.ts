/**
 * Each produced record learns its own outcome, over real sockets against the embedded
 * broker: a batch that spans two partitions while one partition's leader refuses (the call
 * whose partition was acknowledged is told so at once; the other is retried until its own
 * deadline, then told UNAVAILABLE), retries that outlast the client's old fixed bound when
 * the call's deadline allows, and the client's maximum that bounds a later deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { KafkaCluster } from "../../src/kafka/client/kafka-cluster.ts";
import { createKafka, type Kafka } from "../../src/kafka/kafka-client.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../src/kafka/protocol/errors.ts";
import type { ContractRecord } from "../../src/kafka/record-contract.ts";
import { createRequestProducer, ProduceError } from "../../src/kafka/request-producer.ts";
import { createLogger } from "../../src/ops/logger.ts";

let broker: Broker;
let cluster: KafkaCluster;

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  cluster = new KafkaCluster(createKafka({ servers: [broker.bootstrap] }).wire);
});

afterAll(async () => {
  cluster?.close();
  await broker?.close();
});

/** A key that Kafka's partitioner puts on `partition` of `topic`. */
async function keyOn(topic: string, partition: number): Promise<string> {
  const partitions = await cluster.partitions(topic);
  for (let i = 0; ; i++) {
    const key = `call-${i}`;
    if (cluster.choosePartition(topic, partitions, key) === partition) return key;
  }
}

const record = (key: string, text: string): ContractRecord => ({
  key,
  value: new TextEncoder().encode(text),
  headers: [],
});

/** Kafka with the client's produce retry maximum (and lookups) set as given. */
function kafkaWith(wire: { produceRetryMaxMs?: number; retryTimeoutMs?: number }): Kafka {
  const kafka = createKafka({ servers: [broker.bootstrap] }, "produce-outcomes");
  return { ...kafka, wire: { ...kafka.wire, ...wire } };
}

/** How a send ended, and when (ms after `started`). */
async function outcome(sent: Promise<void>, started: number) {
  try {
    await sent;
    return { ok: true as const, afterMs: Date.now() - started };
  } catch (error) {
    return { ok: false as const, afterMs: Date.now() - started, error: error as ProduceError };
  }
}

describe("a batch that spans two partitions", () => {
  test("acknowledges the call whose partition accepted, and retries the other to its own deadline", async () => {
    const topic = "outcome-split";
    broker.createTopic(topic, 2);
    const [onZero, onOne] = [await keyOn(topic, 0), await keyOn(topic, 1)];
    const warnings: string[] = [];
    const producer = await createRequestProducer({
      kafka: kafkaWith({}),
      logger: createLogger("warn", (line) => warnings.push(line)),
    });
    // Partition 1's leader refuses until further notice; partition 0 accepts.
    broker.faults.failPartition(ApiKey.Produce, topic, 1, ErrorCode.NOT_LEADER_OR_FOLLOWER);
    try {
      const started = Date.now();
      const deadline = started + 2_000;
      const accepted = outcome(producer.send(topic, -1, record(onZero, "a"), deadline), started);
      const refused = outcome(producer.send(topic, -1, record(onOne, "b"), deadline), started);
      const [a, b] = await Promise.all([accepted, refused]);
      // Both records left in one batch, one Produce request.
      expect(producer.batches).toBe(1);
      expect(a.ok).toBe(true);
      // Told as soon as partition 0 answered, not when partition 1 gave up.
      expect(a.afterMs).toBeLessThan(1_000);
      expect(b.ok).toBe(false);
      // Retried up to its deadline (the last attempt starts at most 100 ms before it).
      expect(b.afterMs).toBeGreaterThanOrEqual(1_850);
      expect(b.afterMs).toBeLessThan(2_000 + 3_000);
      expect(b.ok === false && b.error).toBeInstanceOf(ProduceError);
      // A leader that stays away is the cluster being unavailable, not a refused record.
      expect(b.ok === false && b.error.unreachable).toBe(true);
      expect(b.ok === false && b.error.message).toMatch(/NOT_LEADER_OR_FOLLOWER/);
      expect(warnings.join("\n")).toMatch(/"records":1,"of":2/);
    } finally {
      broker.faults.failPartition(ApiKey.Produce, topic, 1, 0, 0);
      await producer.close();
    }
    // Only the acknowledged record is in Kafka.
    const offsets = await Promise.all([0, 1].map((p) => cluster.listOffsets(topic, [p], -1)));
    expect(offsets.map((o) => o[0]?.offset)).toEqual([1, 0]);
  });
});

describe("produce retries", () => {
  test("last until the call's deadline, past the client's lookup retry bound", async () => {
    const topic = "outcome-long-retry";
    broker.createTopic(topic, 1);
    const key = await keyOn(topic, 0);
    // The old fixed bound, scaled down: lookups give up after a second.
    const producer = await createRequestProducer({
      kafka: kafkaWith({ retryTimeoutMs: 1_000 }),
      logger: createLogger("error", () => {}),
    });
    // Six refused attempts take at least 2.5 s of backoff (50+100+200+400+800+1000 ms).
    broker.faults.failPartition(ApiKey.Produce, topic, 0, ErrorCode.LEADER_NOT_AVAILABLE, 6);
    try {
      const started = Date.now();
      const result = await outcome(
        producer.send(topic, -1, record(key, "late but acknowledged"), started + 20_000),
        started,
      );
      expect(result.ok).toBe(true);
      expect(result.afterMs).toBeGreaterThanOrEqual(2_500);
    } finally {
      broker.faults.failPartition(ApiKey.Produce, topic, 0, 0, 0);
      await producer.close();
    }
  });

  test("stop at the call's deadline when the client's maximum is far later", async () => {
    const topic = "outcome-deadline";
    broker.createTopic(topic, 1);
    const key = await keyOn(topic, 0);
    const producer = await createRequestProducer({
      kafka: kafkaWith({ produceRetryMaxMs: 60_000 }),
      logger: createLogger("error", () => {}),
    });
    broker.faults.failPartition(ApiKey.Produce, topic, 0, ErrorCode.LEADER_NOT_AVAILABLE);
    try {
      const started = Date.now();
      const result = await outcome(
        producer.send(topic, -1, record(key, "never"), started + 1_500),
        started,
      );
      expect(result.ok).toBe(false);
      expect(result.afterMs).toBeGreaterThanOrEqual(1_350);
      expect(result.afterMs).toBeLessThan(1_500 + 3_000);
    } finally {
      broker.faults.failPartition(ApiKey.Produce, topic, 0, 0, 0);
      await producer.close();
    }
  });

  test("stop at the client's maximum when the call's deadline is later", async () => {
    const topic = "outcome-maximum";
    broker.createTopic(topic, 1);
    const key = await keyOn(topic, 0);
    const producer = await createRequestProducer({
      kafka: kafkaWith({ produceRetryMaxMs: 1_000 }),
      logger: createLogger("error", () => {}),
    });
    broker.faults.failPartition(ApiKey.Produce, topic, 0, ErrorCode.LEADER_NOT_AVAILABLE);
    try {
      const started = Date.now();
      const result = await outcome(
        producer.send(topic, -1, record(key, "never"), started + 60_000),
        started,
      );
      expect(result.ok).toBe(false);
      expect(result.afterMs).toBeGreaterThanOrEqual(850);
      expect(result.afterMs).toBeLessThan(1_000 + 3_000);
    } finally {
      broker.faults.failPartition(ApiKey.Produce, topic, 0, 0, 0);
      await producer.close();
    }
  });

  test("keep one call's records in order while another call's records go on", async () => {
    const topic = "outcome-order";
    broker.createTopic(topic, 2);
    const [slow, fast] = [await keyOn(topic, 1), await keyOn(topic, 0)];
    const producer = await createRequestProducer({
      kafka: kafkaWith({}),
      logger: createLogger("error", () => {}),
      maxInFlight: 1,
    });
    // Partition 1 refuses its first three attempts.
    broker.faults.failPartition(ApiKey.Produce, topic, 1, ErrorCode.NOT_LEADER_OR_FOLLOWER, 3);
    try {
      const deadline = Date.now() + 20_000;
      const first = producer.send(topic, -1, record(slow, "s1"), deadline);
      await new Promise((resolve) => setImmediate(resolve));
      // Queued while s1 is being retried: s2 waits for it, f1 does not.
      const second = producer.send(topic, -1, record(slow, "s2"), deadline);
      const other = producer.send(topic, -1, record(fast, "f1"), deadline);
      const order: string[] = [];
      await Promise.all([
        first.then(() => order.push("s1")),
        second.then(() => order.push("s2")),
        other.then(() => order.push("f1")),
      ]);
      expect(order.indexOf("f1")).toBeLessThan(order.indexOf("s1"));
      expect(order.indexOf("s1")).toBeLessThan(order.indexOf("s2"));
    } finally {
      broker.faults.failPartition(ApiKey.Produce, topic, 1, 0, 0);
      await producer.close();
    }
    const [p1] = await cluster.listOffsets(topic, [1], -1);
    expect(p1?.offset).toBe(2);
  });
});
