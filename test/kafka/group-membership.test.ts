/**
 * The group member against the embedded broker over real sockets, in the faults Kafka's
 * Java consumer rides out without a rejoin: a coordinator that refuses connections for a
 * while, one that answers COORDINATOR_NOT_AVAILABLE, commits it refuses (logged at warn by
 * name), and a ListOffsets answer that names a partition not asked for (retried and
 * reported, the partition read once it has a position).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { KafkaCluster } from "../../src/kafka/client/kafka-cluster.ts";
import {
  type ConsumedRecord,
  type GroupConsumer,
  type GroupConsumerOptions,
  startGroupConsumer,
} from "../../src/kafka/group-consumer.ts";
import { createKafka, type Kafka } from "../../src/kafka/kafka-client.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../src/kafka/protocol/errors.ts";
import { utf8 } from "../../src/kafka/protocol/record-codec.ts";
import { createLogger } from "../../src/ops/logger.ts";

let broker: Broker;
let writer: KafkaCluster;
const open: GroupConsumer[] = [];

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  writer = new KafkaCluster(createKafka({ servers: [broker.bootstrap] }).wire);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  writer?.close();
  await broker?.close();
});

/** Writes `values` to `topic`-`partition`. */
async function write(topic: string, partition: number, ...values: string[]): Promise<void> {
  const encoder = new TextEncoder();
  const records = values.map((v) => ({ key: v, value: encoder.encode(v), headers: [], partition }));
  await writer.produce(-1, 5_000, new Map([[topic, records]]));
}

interface Member {
  consumer: GroupConsumer;
  seen: string[];
  /** Every log line at info and above. */
  logs: string[];
  warnings(): string[];
}

async function member(
  groupId: string,
  topic: string,
  options: Partial<GroupConsumerOptions> & { kafka?: Kafka } = {},
): Promise<Member> {
  const seen: string[] = [];
  const logs: string[] = [];
  const consumer = await startGroupConsumer(
    options.kafka ?? createKafka({ servers: [broker.bootstrap] }, "membership-test"),
    {
      groupId,
      topics: [topic],
      logger: createLogger("info", (line) => logs.push(line)),
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 200,
      rebalanceTimeoutMs: 10_000,
      maxWaitTimeMs: 200,
      ...options,
      onRecord(record: ConsumedRecord) {
        seen.push(record.value ? utf8(record.value) : "");
        return true;
      },
      onRebalancing: async () => {},
      onAssignment: () => {},
    },
  );
  open.push(consumer);
  return {
    consumer,
    seen,
    logs,
    warnings: () => logs.filter((l) => l.includes('"level":"warn"')),
  };
}

describe("a coordinator that stops answering", () => {
  test("refused connections: heartbeats find it again, keeping member id and generation, no JoinGroup", async () => {
    const topic = "membership-refused";
    broker.createTopic(topic, 1);
    const m = await member("g-membership-refused", topic);
    await write(topic, 0, "before");
    await vi.waitFor(() => expect(m.seen).toEqual(["before"]), { timeout: 10_000 });
    const identity = m.consumer.identity();
    const joins = broker.faults.requests(ApiKey.JoinGroup);

    await broker.faults.down();
    try {
      await vi.waitFor(
        () => expect(m.warnings().join("\n")).toMatch(/heartbeat failed; keeping the membership/),
        { timeout: 10_000 },
      );
    } finally {
      await broker.faults.up();
    }
    await vi.waitFor(() => expect(m.logs.join("\n")).toMatch(/heartbeat answered again/), {
      timeout: 10_000,
    });
    await write(topic, 0, "after");
    await vi.waitFor(() => expect(m.seen).toEqual(["before", "after"]), { timeout: 10_000 });
    expect(m.consumer.identity()).toEqual(identity);
    expect(broker.faults.requests(ApiKey.JoinGroup)).toBe(joins);
    expect(m.consumer.unreadyReasons()).toEqual([]);
  });

  test("COORDINATOR_NOT_AVAILABLE for a while: no rejoin, the error logged by name", async () => {
    const topic = "membership-unavailable";
    broker.createTopic(topic, 1);
    const m = await member("g-membership-unavailable", topic);
    const identity = m.consumer.identity();
    const joins = broker.faults.requests(ApiKey.JoinGroup);
    broker.faults.failNext(ApiKey.Heartbeat, Number.POSITIVE_INFINITY, 15);
    broker.faults.failNext(ApiKey.FindCoordinator, Number.POSITIVE_INFINITY, 15);
    try {
      await vi.waitFor(
        () =>
          expect(m.warnings().join("\n")).toMatch(
            /heartbeat failed.*"kafkaError":"COORDINATOR_NOT_AVAILABLE \(15\)"/,
          ),
        { timeout: 10_000 },
      );
      // Several heartbeats go unanswered while the coordinator is unavailable.
      const beats = broker.faults.requests(ApiKey.FindCoordinator);
      await vi.waitFor(
        () => expect(broker.faults.requests(ApiKey.FindCoordinator)).toBeGreaterThan(beats + 2),
        { timeout: 10_000 },
      );
    } finally {
      broker.faults.failNext(ApiKey.Heartbeat, 0, 0);
      broker.faults.failNext(ApiKey.FindCoordinator, 0, 0);
    }
    await vi.waitFor(() => expect(m.logs.join("\n")).toMatch(/heartbeat answered again/), {
      timeout: 10_000,
    });
    expect(m.consumer.identity()).toEqual(identity);
    expect(broker.faults.requests(ApiKey.JoinGroup)).toBe(joins);
  });

  test("a JoinGroup refused with COORDINATOR_NOT_AVAILABLE is retried and logged by name", async () => {
    const topic = "membership-join-refused";
    broker.createTopic(topic, 1);
    broker.faults.failNext(ApiKey.JoinGroup, 2, 15);
    const m = await member("g-membership-join-refused", topic);
    expect(m.consumer.assignment()).toEqual([{ topic, partition: 0 }]);
    const warned = m.warnings().join("\n");
    expect(warned).toMatch(
      /consumer group join failed; retrying.*COORDINATOR_NOT_AVAILABLE \(15\)/,
    );
    expect(warned).not.toMatch(/null where a string is required/);
  });
});

describe("commits", () => {
  test("a refused commit is logged at warn by name, and ILLEGAL_GENERATION rejoins", async () => {
    const topic = "membership-commit";
    broker.createTopic(topic, 1);
    const m = await member("g-membership-commit", topic);
    const { generation } = m.consumer.identity();
    broker.faults.failNext(ApiKey.OffsetCommit, 1, ErrorCode.ILLEGAL_GENERATION);
    await expect(m.consumer.commit([{ topic, partition: 0, offset: 0n }])).rejects.toThrow(
      /ILLEGAL_GENERATION/,
    );
    expect(m.warnings().join("\n")).toMatch(
      /"msg":"offset commit refused".*"kafkaError":"ILLEGAL_GENERATION \(22\)"/,
    );
    // The generation was over: the member joins again (as the same member) and goes on.
    await vi.waitFor(() => expect(m.consumer.identity().generation).toBeGreaterThan(generation), {
      timeout: 10_000,
    });
    await m.consumer.commit([{ topic, partition: 0, offset: 0n }]);
  });

  test("a commit to a coordinator that moved is sent again to the one found now", async () => {
    const topic = "membership-commit-moved";
    broker.createTopic(topic, 1);
    const m = await member("g-membership-commit-moved", topic);
    const identity = m.consumer.identity();
    broker.faults.failNext(ApiKey.OffsetCommit, 1, ErrorCode.NOT_COORDINATOR);
    const finds = broker.faults.requests(ApiKey.FindCoordinator);
    await m.consumer.commit([{ topic, partition: 0, offset: 0n }]);
    expect(broker.faults.requests(ApiKey.FindCoordinator)).toBe(finds + 1);
    expect(m.warnings().join("\n")).toMatch(/offset commit refused.*NOT_COORDINATOR \(16\)/);
    expect(m.consumer.identity()).toEqual(identity);
  });
});

describe("answers that break the protocol", () => {
  test("a ListOffsets answer naming partition -1 is retried and reported; the partition is read", async () => {
    const topic = "membership-misnamed";
    broker.createTopic(topic, 3);
    for (const p of [0, 1, 2]) await write(topic, p, `p${p}`);
    // The next two answers name partition 2 as -1 (a broker bug).
    broker.faults.misnamePartition(ApiKey.ListOffsets, topic, 2, -1, 2);
    const m = await member("g-membership-misnamed", topic);
    await vi.waitFor(() => expect([...m.seen].sort()).toEqual(["p0", "p1", "p2"]), {
      timeout: 15_000,
    });
    const warned = m.warnings().join("\n");
    expect(warned).toMatch(/KafkaAnswerError/);
    expect(warned).toMatch(
      /ListOffsets answer names membership-misnamed--1, which was not asked for/,
    );
  });

  test("a Fetch answer naming a partition not asked for is reported; reading goes on", async () => {
    const topic = "membership-fetch-misnamed";
    broker.createTopic(topic, 1);
    const m = await member("g-membership-fetch-misnamed", topic);
    broker.faults.misnamePartition(ApiKey.Fetch, topic, 0, 5, 1);
    await write(topic, 0, "once");
    await vi.waitFor(() => expect(m.seen).toEqual(["once"]), { timeout: 15_000 });
    expect(m.warnings().join("\n")).toMatch(
      /fetch answer broke the protocol.*Fetch answer names membership-fetch-misnamed-5, which was not asked for/,
    );
  });

  test("an assigned partition without a position makes the member unready until it has one", async () => {
    const topic = "membership-unplaced";
    broker.createTopic(topic, 2);
    await write(topic, 1, "late");
    broker.faults.misnamePartition(ApiKey.ListOffsets, topic, 1, 7);
    const kafka = createKafka({ servers: [broker.bootstrap] }, "membership-test");
    // Lookups give up quickly, so the member starts with partition 1 still unplaced.
    const quick = { ...kafka, wire: { ...kafka.wire, retryTimeoutMs: 500 } };
    const m = await member("g-membership-unplaced", topic, { kafka: quick });
    try {
      await vi.waitFor(
        () =>
          expect(m.consumer.unreadyReasons().join("\n")).toMatch(
            /membership-unplaced-1 is assigned but has no position: .*not asked for/,
          ),
        { timeout: 10_000 },
      );
      expect(m.seen).toEqual([]);
    } finally {
      broker.faults.misnamePartition(ApiKey.ListOffsets, topic, 1, 0, 0);
    }
    await vi.waitFor(() => expect(m.seen).toEqual(["late"]), { timeout: 15_000 });
    expect(m.consumer.unreadyReasons()).toEqual([]);
  });
});
