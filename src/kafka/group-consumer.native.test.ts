/**
 * The native consumer-group member against the embedded broker over TCP, with kafkajs'
 * admin client and kcat (librdkafka) as independent referees: partition splits, hand-over
 * from committed offsets, interop in one group with librdkafka, refused records, commits,
 * slow handlers, rebalances without churn, and leaving.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { type Admin, AssignerProtocol, Kafka as KafkaJs, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../broker/broker.ts";
import { createLogger, type Logger, silentLogger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import { testSettings, waitFor, writeTo } from "./client/wire-test-kit.ts";
import {
  type ConsumedRecord,
  type GroupConsumer,
  type GroupConsumerOptions,
  startGroupConsumer,
  type TopicPartition,
} from "./group-consumer.ts";
import { createKafka, type Kafka } from "./kafka-client.ts";
import { ApiKey } from "./protocol/api-keys.ts";
import { utf8 } from "./protocol/record-codec.ts";

/** Slow handlers, and waits that prove nothing happens for a time (each call says what). */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tpKey = (t: TopicPartition) => `${t.topic}/${t.partition}`;

let broker: Broker;
let kafka: Kafka;
let writer: KafkaCluster;
let admin: Admin;
const open: GroupConsumer[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  broker = await startBroker();
  kafka = createKafka({ servers: [broker.bootstrap] }, "group-test");
  writer = new KafkaCluster(testSettings(broker.bootstrap));
  admin = new KafkaJs({
    clientId: "referee",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
});

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await Promise.all(open.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await admin?.disconnect();
  writer?.close();
  await broker?.close();
});

/** Writes `values` to `topic`-`partition`. */
function write(topic: string, partition: number, ...values: string[]): Promise<void> {
  return writeTo(writer, topic, partition, values);
}

/** Writes `count` records to every partition, valued "<tag>-p<partition>-<i>". */
async function fill(topic: string, partitions: number, tag: string, count: number) {
  for (let p = 0; p < partitions; p++) {
    await write(topic, p, ...Array.from({ length: count }, (_, i) => `${tag}-p${p}-${i}`));
  }
}

interface Member {
  consumer: GroupConsumer;
  seen: ConsumedRecord[];
  assignments: TopicPartition[][];
  rebalances: number;
  warnings: string[];
  /** Commits the next offset of every record handled so far, on the current assignment. */
  commitNow(): Promise<void>;
}

/** A member that accepts every record (unless `refuse` says otherwise) and commits on rebalance. */
async function member(
  groupId: string,
  topics: string[],
  options: Partial<GroupConsumerOptions> & {
    refuse?: (record: ConsumedRecord) => boolean;
    slowMs?: (record: ConsumedRecord) => number;
    /** How long the rebalance hook takes (the rejoin waits for it). */
    rejoinDelayMs?: () => number;
    kafka?: Kafka;
  } = {},
): Promise<Member> {
  const seen: ConsumedRecord[] = [];
  const assignments: TopicPartition[][] = [];
  const warnings: string[] = [];
  const next = new Map<string, CommitTarget>();
  let consumer: GroupConsumer | undefined;
  const logger: Logger = createLogger("warn", (line) => warnings.push(line));
  const m: Member = {
    consumer: undefined as unknown as GroupConsumer,
    seen,
    assignments,
    rebalances: 0,
    warnings,
    async commitNow() {
      const mine = new Set((consumer?.assignment() ?? []).map(tpKey));
      const offsets = [...next.values()].filter((o) => mine.has(tpKey(o)));
      await consumer?.commit(offsets);
    },
  };
  consumer = await startGroupConsumer(options.kafka ?? kafka, {
    groupId,
    topics,
    logger,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 300,
    rebalanceTimeoutMs: 15_000,
    maxWaitTimeMs: 300,
    ...options,
    async onRecord(record) {
      const slow = options.slowMs?.(record) ?? 0;
      if (slow > 0) await sleep(slow);
      if (options.refuse?.(record)) return false;
      seen.push(record);
      next.set(tpKey(record), {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset + 1n,
      });
      return true;
    },
    async onRebalancing() {
      m.rebalances++;
      const delay = options.rejoinDelayMs?.() ?? 0;
      if (delay > 0) await sleep(delay);
      await m.commitNow();
    },
    onAssignment(assignment) {
      assignments.push(assignment);
    },
  });
  m.consumer = consumer;
  open.push(consumer);
  return m;
}

interface CommitTarget extends TopicPartition {
  offset: bigint;
}

const valuesOf = (records: ConsumedRecord[]) =>
  records.map((r) => (r.value === null ? null : utf8(r.value)));

/** The group as kafkajs describes it: members by id, each with its decoded assignment. */
async function describe_(groupId: string) {
  const { groups } = await admin.describeGroups([groupId]);
  const group = groups[0];
  const members = (group?.members ?? []).map((m) => {
    const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
    return { id: m.memberId, assignment: decoded?.assignment ?? {} };
  });
  return { state: group?.state, protocol: group?.protocol, members };
}

describe("two native members", () => {
  it("split partitions by range, hand over on leave and go on from committed offsets", async () => {
    const topic = "range-split";
    const groupId = "g-range";
    broker.createTopic(topic, 4);
    await fill(topic, 4, "first", 3);

    const a = await member(groupId, [topic]);
    expect(a.consumer.assignment().map(tpKey).sort()).toEqual(
      [0, 1, 2, 3].map((p) => `${topic}/${p}`),
    );
    await waitFor(() => a.seen.length === 12, "a reads everything");

    const b = await member(groupId, [topic]);
    await waitFor(
      () => a.consumer.assignment().length === 2 && b.consumer.assignment().length === 2,
      "the split",
    );
    const group = await describe_(groupId);
    expect(group.protocol).toBe("range");
    expect(group.state).toBe("Stable");
    // Range: the member with the lower id takes the lower partitions.
    const [low, high] = [...group.members].sort((x, y) => (x.id < y.id ? -1 : 1));
    expect(low?.assignment[topic]).toEqual([0, 1]);
    expect(high?.assignment[topic]).toEqual([2, 3]);
    const owned = [...a.consumer.assignment(), ...b.consumer.assignment()].map(tpKey).sort();
    expect(owned).toEqual([0, 1, 2, 3].map((p) => `${topic}/${p}`));

    // a committed before the rebalance: b does not read the first records again.
    await fill(topic, 4, "second", 2);
    await waitFor(() => a.seen.length + b.seen.length === 12 + 8, "the second round");
    await sleep(500); // nothing happens for 500 ms: no record is read twice
    expect(b.seen.every((r) => utf8(r.value as Uint8Array).startsWith("second"))).toBe(true);
    for (const m of [a, b]) {
      const mine = new Set(m.consumer.assignment().map((t) => t.partition));
      const secondRound = m.seen.filter((r) => utf8(r.value as Uint8Array).startsWith("second"));
      expect(new Set(secondRound.map((r) => r.partition))).toEqual(mine);
    }

    // a leaves (after committing): b takes all four and reads on from a's commits.
    await a.commitNow();
    await a.consumer.close();
    await waitFor(() => b.consumer.assignment().length === 4, "b takes everything");
    await fill(topic, 4, "third", 1);
    await waitFor(
      () => b.seen.filter((r) => utf8(r.value as Uint8Array).startsWith("third")).length === 4,
      "third round",
    );
    await sleep(500); // nothing happens for 500 ms: no record is read twice
    const bValues = valuesOf(b.seen) as string[];
    expect(bValues.filter((v) => v.startsWith("first"))).toEqual([]);
    expect(new Set(bValues).size).toBe(bValues.length); // no duplicates
    expect(a.warnings).toEqual([]);
    expect(b.warnings).toEqual([]);
  });
});

describe("with librdkafka (kcat -G) in the same group", () => {
  /** Starts `kcat -G`, collecting the partitions of the records it prints. */
  function kcatMember(groupId: string, topic: string, strategy: string) {
    const child = spawn(
      "kcat",
      [
        "-b",
        broker.bootstrap,
        "-G",
        groupId,
        "-J",
        "-u",
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        "heartbeat.interval.ms=300",
        "-X",
        `partition.assignment.strategy=${strategy}`,
        topic,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    const records: { partition: number; payload: string }[] = [];
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("{"))
          records.push(JSON.parse(line) as { partition: number; payload: string });
      }
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    return { child, records, stderr: () => stderr };
  }

  it.each([
    ["range", "native-first", [0, 1]],
    ["range", "kcat-first", [0, 1]],
    ["roundrobin", "native-first", [0, 2]],
    ["roundrobin", "kcat-first", [0, 2]],
  ])("share the partitions (%s, %s)", async (strategy, order, lowest) => {
    const topic = `interop-${strategy}-${order}`;
    const groupId = `g-interop-${strategy}-${order}`;
    broker.createTopic(topic, 4);
    let native: Member;
    let rd: ReturnType<typeof kcatMember>;
    if (order === "native-first") {
      native = await member(groupId, [topic]);
      rd = kcatMember(groupId, topic, strategy);
    } else {
      rd = kcatMember(groupId, topic, strategy);
      await waitFor(async () => (await describe_(groupId)).state === "Stable", "kcat in the group");
      native = await member(groupId, [topic]);
    }
    await waitFor(
      async () => {
        const group = await describe_(groupId);
        return (
          group.state === "Stable" &&
          group.members.length === 2 &&
          native.consumer.assignment().length === 2
        );
      },
      "a stable two-member group",
      30_000,
    );
    const group = await describe_(groupId);
    expect(group.protocol).toBe(strategy);
    const assigned = group.members.flatMap((m) => m.assignment[topic] ?? []).sort();
    expect(assigned).toEqual([0, 1, 2, 3]);
    // Whoever leads, the member with the lower id gets what Kafka's assignor gives it.
    const [low] = [...group.members].sort((x, y) => (x.id < y.id ? -1 : 1));
    expect(low?.assignment[topic]).toEqual(lowest);

    await fill(topic, 4, "x", 2);
    await waitFor(() => native.seen.length + rd.records.length >= 8, "every record read once");
    await sleep(500); // nothing happens for 500 ms: no record is read twice
    const nativeParts = new Set(native.seen.map((r) => r.partition));
    const rdParts = new Set(rd.records.map((r) => r.partition));
    expect([...nativeParts].sort()).toEqual(
      native.consumer
        .assignment()
        .map((t) => t.partition)
        .sort(),
    );
    expect([...nativeParts].filter((p) => rdParts.has(p))).toEqual([]);
    expect(native.seen.length + rd.records.length).toBe(8);
    expect(native.warnings).toEqual([]);

    // kcat leaves: the native member takes all.
    rd.child.kill("SIGTERM");
    await waitFor(
      () => native.consumer.assignment().length === 4,
      "the native member takes all",
      30_000,
    );
  });
});

describe("one native member", () => {
  it("pauses only the partition of a refused record; resumeRefused reads from that record", async () => {
    const topic = "refusing";
    const groupId = "g-refuse";
    broker.createTopic(topic, 2);
    let refusing = true;
    const m = await member(groupId, [topic], {
      refuse: (r) => refusing && r.partition === 0 && r.offset === 1n,
    });
    await write(topic, 0, "p0-0", "p0-1", "p0-2");
    await write(topic, 1, "p1-0");
    await waitFor(() => m.consumer.refused().length === 1, "the refusal");
    expect(m.consumer.refused()).toEqual([{ topic, partition: 0 }]);
    await write(topic, 1, "p1-1");
    await write(topic, 0, "p0-3");
    await waitFor(() => m.seen.filter((r) => r.partition === 1).length === 2, "partition 1 flows");
    await sleep(700); // nothing happens for 700 ms: the refused partition stays refused
    expect(valuesOf(m.seen.filter((r) => r.partition === 0))).toEqual(["p0-0"]);

    refusing = false;
    m.consumer.resumeRefused();
    expect(m.consumer.refused()).toEqual([]);
    await waitFor(
      () => m.seen.filter((r) => r.partition === 0).length === 4,
      "partition 0 after resume",
    );
    await sleep(300); // nothing happens for 300 ms: no record is read twice
    expect(valuesOf(m.seen.filter((r) => r.partition === 0))).toEqual([
      "p0-0",
      "p0-1",
      "p0-2",
      "p0-3",
    ]);
    expect(m.seen.filter((r) => r.partition === 0).map((r) => r.offset)).toEqual([0n, 1n, 2n, 3n]);
  });

  it("commits what kafkajs' admin reads back", async () => {
    const topic = "committing";
    const groupId = "g-commit";
    broker.createTopic(topic, 3);
    const m = await member(groupId, [topic]);
    await write(topic, 0, "a", "b", "c");
    await write(topic, 2, "d");
    await waitFor(() => m.seen.length === 4, "four records");
    await m.commitNow();
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const byPartition = Object.fromEntries(
      (offsets?.partitions ?? []).map((p) => [p.partition, p.offset]),
    );
    expect(byPartition).toEqual({ 0: "3", 1: "-1", 2: "1" });
  });

  it("keeps its membership through a handler slower than the session timeout", async () => {
    const topic = "slow-handler";
    const groupId = "g-slow";
    broker.createTopic(topic, 1);
    const m = await member(groupId, [topic], {
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 500,
      slowMs: (r) => (r.offset === 0n ? 9_000 : 0),
    });
    await write(topic, 0, "slow", "fast");
    await waitFor(() => m.seen.length === 2, "both records", 25_000);
    expect(m.rebalances).toBe(0);
    expect(m.assignments).toHaveLength(1);
    const group = await describe_(groupId);
    expect(group.state).toBe("Stable");
    expect(group.members).toHaveLength(1);
  }, 40_000);

  it("leaves the group on close()", async () => {
    const topic = "leaving";
    const groupId = "g-leave";
    broker.createTopic(topic, 1);
    const m = await member(groupId, [topic], { sessionTimeoutMs: 30_000 });
    expect((await describe_(groupId)).members).toHaveLength(1);
    await m.consumer.close();
    // Well before the session timeout: the member left rather than expired.
    const group = await describe_(groupId);
    expect(group.members).toEqual([]);
    expect(group.state).toBe("Empty");
  });
});

describe("faults", () => {
  it("rides out dropped connections and a moved coordinator without loss or duplicates", async () => {
    const topic = "group-faults";
    const groupId = "g-faults";
    broker.createTopic(topic, 2);
    const m = await member(groupId, [topic]);
    await fill(topic, 2, "a", 3);
    await waitFor(() => m.seen.length === 6, "the first records");
    broker.faults.dropConnections();
    await fill(topic, 2, "b", 3);
    await waitFor(() => m.seen.length === 12, "the records after the drop");
    const before = m.consumer.identity();
    broker.faults.failNext(ApiKey.Heartbeat, 1, 16); // NOT_COORDINATOR
    await waitFor(
      () => m.warnings.some((w) => w.includes("NOT_COORDINATOR")),
      "the refused heartbeat",
    );
    await fill(topic, 2, "c", 3);
    await waitFor(() => m.seen.length >= 18, "the records after the coordinator moved");
    await sleep(500); // nothing happens for 500 ms: no record is read twice
    const seen = valuesOf(m.seen) as string[];
    expect(seen).toHaveLength(18);
    expect(new Set(seen).size).toBe(18);
    expect(m.consumer.assignment()).toHaveLength(2);
    // The coordinator was found again: same member, same generation, no rejoin.
    expect(m.consumer.identity()).toEqual(before);
    expect(m.assignments).toHaveLength(1);
  });

  it("assigns every partition when the leader's metadata is briefly unavailable", async () => {
    const topic = "leader-metadata";
    broker.createTopic(topic, 3);
    await writer.partitions(topic);
    broker.faults.failNext(ApiKey.Metadata, 2, 5); // LEADER_NOT_AVAILABLE, as during creation
    const m = await member("g-leader-metadata", [topic]);
    expect(m.consumer.assignment().map((t) => t.partition)).toEqual([0, 1, 2]);
  });

  it("retries offset reads the coordinator is not ready for, without another rebalance", async () => {
    const topic = "offsets-loading";
    const groupId = "g-offsets-loading";
    broker.createTopic(topic, 2);
    await write(topic, 0, "o0", "o1");
    const first = await member(groupId, [topic]);
    await waitFor(() => first.seen.length === 2, "the first member's records");
    await first.commitNow();
    await first.consumer.close();
    await write(topic, 0, "o2");
    broker.faults.failNext(ApiKey.OffsetFetch, 2, 14); // COORDINATOR_LOAD_IN_PROGRESS
    const m = await member(groupId, [topic]);
    await waitFor(() => m.seen.length === 1, "the record after the commit");
    await sleep(500); // nothing happens for 500 ms: nothing committed is read again
    expect(valuesOf(m.seen)).toEqual(["o2"]);
    expect(m.assignments).toHaveLength(1);
    expect(m.warnings).toEqual([]);
  });

  it("closes promptly while its rejoin waits for another member", async () => {
    const topic = "close-in-join";
    const groupId = "g-close-in-join";
    broker.createTopic(topic, 2);
    let slow = false;
    const a = await member(groupId, [topic]);
    await member(groupId, [topic], { rejoinDelayMs: () => (slow ? 8_000 : 0) });
    await waitFor(() => a.consumer.assignment().length === 1, "two-way split");
    slow = true;
    const joinsBefore = broker.faults.requests(ApiKey.JoinGroup);
    // A third member starts a rebalance; a rejoins at once and waits for the slow member.
    const c = startGroupConsumer(kafka, {
      groupId,
      topics: [topic],
      logger: silentLogger,
      heartbeatIntervalMs: 300,
      async onRecord() {
        return true;
      },
      async onRebalancing() {},
      onAssignment() {},
    });
    await waitFor(() => a.rebalances === 1, "a's rebalance");
    // c's two JoinGroups (the broker names it first) and a's: a's join is held at the broker.
    await waitFor(
      () => broker.faults.requests(ApiKey.JoinGroup) >= joinsBefore + 3,
      "a's JoinGroup at the coordinator",
    );
    const started = Date.now();
    await a.consumer.close();
    expect(Date.now() - started).toBeLessThan(4_000);
    open.push(await c);
  }, 40_000);
});

describe("rebalances", () => {
  it("settle in one round each, even when a member is slow to rejoin", async () => {
    const topic = "churn";
    const groupId = "g-churn";
    broker.createTopic(topic, 6);
    // A short request timeout: a heartbeat queued behind a long JoinGroup must not time out
    // the coordinator connection.
    const quick = createKafka({ servers: [broker.bootstrap] }, "group-test-quick");
    (quick as { wire: Kafka["wire"] }).wire = testSettings(broker.bootstrap, {
      requestTimeoutMs: 2_000,
    });
    let slowRejoin = false;
    const a = await member(groupId, [topic], { kafka: quick });
    // b's rebalance hook is slow: a's JoinGroup waits for b for longer than the timeout.
    const b = await member(groupId, [topic], {
      kafka: quick,
      rejoinDelayMs: () => (slowRejoin ? 4_000 : 0),
    });
    await waitFor(
      () => a.consumer.assignment().length === 3 && b.consumer.assignment().length === 3,
      "two-way split",
    );
    const aBefore = a.assignments.length;
    const bBefore = b.assignments.length;
    // Commits on a timer, as west makes them: those answered REBALANCE_IN_PROGRESS during
    // the join must not start yet another round.
    const members = [a, b];
    const ticker = setInterval(() => {
      for (const m of members) m.commitNow().catch(() => {});
    }, 150);
    try {
      slowRejoin = true;
      const c = await member(groupId, [topic], { kafka: quick });
      members.push(c);
      await waitFor(
        () => [a, b, c].every((m) => m.consumer.assignment().length === 2),
        "three-way split",
      );
      await sleep(3_000); // nothing happens for 3 s: no further rebalance round
    } finally {
      clearInterval(ticker);
    }
    const c = members[2] as Member;
    // One more assignment each, no rounds after it.
    expect(a.assignments.length - aBefore).toBe(1);
    expect(b.assignments.length - bBefore).toBe(1);
    expect(c.assignments).toHaveLength(1);
    expect([...a.warnings, ...b.warnings, ...c.warnings]).toEqual([]);
  }, 60_000);
});

describe("with a kafkajs consumer in the same group (a rolling upgrade from kafkajs members)", () => {
  it("shares the partitions under kafkajs' RoundRobinAssigner protocol", async () => {
    const topic = "interop-kafkajs";
    const groupId = "g-interop-kafkajs";
    broker.createTopic(topic, 4);
    const old = new KafkaJs({
      clientId: "old-member",
      brokers: [broker.bootstrap],
      logLevel: logLevel.NOTHING,
    }).consumer({ groupId, heartbeatInterval: 300, sessionTimeout: 10_000 });
    const oldSeen: number[] = [];
    try {
      await old.connect();
      await old.subscribe({ topic, fromBeginning: true });
      await old.run({
        eachMessage: async ({ partition }) => {
          oldSeen.push(partition);
        },
      });
      const native = await member(groupId, [topic]);
      await waitFor(
        async () => {
          const group = await describe_(groupId);
          return (
            group.state === "Stable" &&
            group.members.length === 2 &&
            native.consumer.assignment().length === 2
          );
        },
        "a stable two-member group",
        30_000,
      );
      const group = await describe_(groupId);
      // The only protocol both offer: kafkajs names its round robin "RoundRobinAssigner".
      expect(group.protocol).toBe("RoundRobinAssigner");
      expect(group.members.flatMap((m) => m.assignment[topic] ?? []).sort()).toEqual([0, 1, 2, 3]);

      await fill(topic, 4, "y", 2);
      await waitFor(() => native.seen.length + oldSeen.length >= 8, "every record read once");
      await sleep(500); // nothing happens for 500 ms: no record is read twice
      expect(native.seen.length + oldSeen.length).toBe(8);
      const nativeParts = new Set(native.seen.map((r) => r.partition));
      expect(oldSeen.filter((p) => nativeParts.has(p))).toEqual([]);
    } finally {
      await old.disconnect();
    }
  });
});
