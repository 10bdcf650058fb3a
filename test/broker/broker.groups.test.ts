/**
 * Consumer groups against the embedded broker over real sockets, with real clients:
 * kafkajs consumers and admin, and librdkafka through kcat.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import {
  type Admin,
  AssignerProtocol,
  type Consumer,
  type ConsumerConfig,
  Kafka,
  logLevel,
  type PartitionAssigner,
  PartitionAssigners,
  type Producer,
} from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";

const run = promisify(execFile);

let broker: Broker;
let kafka: Kafka;
let producer: Producer;
let admin: Admin;
let consumers: Consumer[] = [];

beforeAll(async () => {
  broker = await startBroker();
  kafka = new Kafka({
    clientId: "groups-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  producer = kafka.producer();
  admin = kafka.admin();
  await Promise.all([producer.connect(), admin.connect()]);
});

afterEach(async () => {
  await Promise.all(consumers.map((c) => c.disconnect().catch(() => {})));
  consumers = [];
});

afterAll(async () => {
  await Promise.all([producer?.disconnect(), admin?.disconnect()]);
  await broker?.close();
});

/** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

/** A kafkajs consumer tuned to notice rebalances quickly (short heartbeat interval and fetch wait). */
function consumer(groupId: string, over: Partial<ConsumerConfig> = {}): Consumer {
  const c = kafka.consumer({
    groupId,
    sessionTimeout: 10_000,
    rebalanceTimeout: 15_000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 200,
    retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
    ...over,
  });
  consumers.push(c);
  return c;
}

interface Received {
  partition: number;
  offset: string;
  value: string;
}

/** Starts a consumer on `topic`, recording what it receives and its latest assignment. */
async function startConsumer(c: Consumer, topic: string) {
  const state = { assigned: [] as number[], joins: 0, received: [] as Received[] };
  c.on(c.events.GROUP_JOIN, (e) => {
    state.assigned = [...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b);
    state.joins++;
  });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    eachMessage: async ({ partition, message }) => {
      state.received.push({
        partition,
        offset: message.offset,
        value: message.value?.toString() ?? "",
      });
    },
  });
  return state;
}

async function produce(topic: string, values: string[], partitions: number) {
  await producer.send({
    topic,
    messages: values.map((value, i) => ({ value, partition: i % partitions })),
  });
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `m${from + i}`);

describe("kafkajs consumer groups", () => {
  it("splits partitions between two members and gives the survivor all of them when one leaves", async () => {
    const topic = "split";
    broker.createTopic(topic, 4);
    const first = consumer("split-group");
    const second = consumer("split-group");
    const a = await startConsumer(first, topic);
    await waitFor("the first member to own all 4 partitions", () => a.assigned.length === 4);

    const b = await startConsumer(second, topic);
    await waitFor(
      "a 2/2 split",
      () =>
        a.assigned.length === 2 &&
        b.assigned.length === 2 &&
        new Set([...a.assigned, ...b.assigned]).size === 4,
    );
    expect(a.joins).toBeGreaterThanOrEqual(2);

    await produce(topic, range(0, 20), 4);
    await waitFor(
      "20 records across both members",
      () => a.received.length + b.received.length === 20,
    );
    // Each member got exactly the records of its own partitions.
    expect(a.received.every((r) => a.assigned.includes(r.partition))).toBe(true);
    expect(b.received.every((r) => b.assigned.includes(r.partition))).toBe(true);
    expect(a.received).toHaveLength(10);
    expect(b.received).toHaveLength(10);

    await first.disconnect();
    await waitFor("the survivor to own all 4 partitions", () => b.assigned.length === 4);
    await produce(topic, range(20, 28), 4);
    await waitFor("the survivor to receive the new records", () => b.received.length === 18);
    // Offsets the leaver committed were honoured: nothing it processed came again.
    const values = [...a.received, ...b.received].map((r) => r.value).sort();
    expect(values).toEqual(range(0, 28).sort());
  });

  it("resumes from committed offsets after a restart, with no gap and no duplicate", async () => {
    const topic = "resume";
    broker.createTopic(topic, 2);
    await produce(topic, range(0, 10), 2);
    const before = await startConsumer(consumer("resume-group"), topic);
    await waitFor("the first run to read 10 records", () => before.received.length === 10);
    await consumers[0]?.disconnect();

    const committed = await admin.fetchOffsets({ groupId: "resume-group", topics: [topic] });
    expect(committed[0]?.partitions.map((p) => [p.partition, p.offset]).sort()).toEqual([
      [0, "5"],
      [1, "5"],
    ]);

    await produce(topic, range(10, 20), 2);
    const after = await startConsumer(consumer("resume-group"), topic);
    await waitFor("the second run to read 10 records", () => after.received.length >= 10);
    // Redelivered records would come first (lower offsets), so the first ten tell.
    expect(
      after.received
        .slice(0, 10)
        .map((r) => r.value)
        .sort(),
    ).toEqual(range(10, 20).sort());
    expect(after.received.every((r) => Number(r.offset) >= 5)).toBe(true);
    expect(before.received.map((r) => r.value).sort()).toEqual(range(0, 10).sort());
  });

  it("lists, describes and deletes groups through the admin client", async () => {
    const topic = "admin-groups";
    broker.createTopic(topic, 3);
    const c = consumer("admin-group");
    const state = await startConsumer(c, topic);
    await waitFor("the member to own all 3 partitions", () => state.assigned.length === 3);

    const listed = await admin.listGroups();
    expect(listed.groups).toContainEqual({ groupId: "admin-group", protocolType: "consumer" });

    await waitFor("the group to be Stable", async () => {
      const d = await admin.describeGroups(["admin-group"]);
      return d.groups[0]?.state === "Stable";
    });
    const { groups } = await admin.describeGroups(["admin-group"]);
    const group = groups[0];
    expect(group).toMatchObject({
      groupId: "admin-group",
      protocolType: "consumer",
      protocol: "RoundRobinAssigner",
    });
    expect(group?.members).toHaveLength(1);
    const assignment = AssignerProtocol.MemberAssignment.decode(
      group?.members[0]?.memberAssignment as Buffer,
    );
    expect(assignment?.assignment[topic]?.sort()).toEqual([0, 1, 2]);
    expect(group?.members[0]?.clientId).toBe("groups-test");

    await expect(admin.deleteGroups(["admin-group"])).rejects.toMatchObject({
      groups: [expect.objectContaining({ groupId: "admin-group", errorCode: 68 })],
    });

    await c.disconnect();
    const empty = await admin.describeGroups(["admin-group"]);
    expect(empty.groups[0]?.state).toBe("Empty");
    const deleted = await admin.deleteGroups(["admin-group"]);
    expect(deleted).toEqual([expect.objectContaining({ groupId: "admin-group", errorCode: 0 })]);
    const after = await admin.listGroups();
    expect(after.groups.map((g) => g.groupId)).not.toContain("admin-group");
    await expect(admin.deleteGroups(["admin-group"])).rejects.toMatchObject({
      groups: [expect.objectContaining({ groupId: "admin-group", errorCode: 69 })],
    });
  });
});

describe("librdkafka (kcat) consumer groups", () => {
  /** Runs kcat as a balanced-group consumer; `extra` picks its stop condition. */
  async function kcat(group: string, topic: string, extra: string[]): Promise<Received[]> {
    const args = [
      "-b",
      broker.bootstrap,
      "-G",
      group,
      topic,
      // Not "-o beginning": in group mode that overrides committed offsets too.
      "-X",
      "auto.offset.reset=earliest",
      "-q",
      "-f",
      "%p %o %s\\n",
      ...extra,
    ];
    const { stdout } = await run("kcat", args, { timeout: 45_000 }).catch((err: Error) => {
      throw new Error(
        `kcat ${args.join(" ")} failed (is kcat installed? apt-get install -y kcat): ${err.message}`,
      );
    });
    return stdout
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => {
        const [partition, offset, value] = line.split(" ");
        return { partition: Number(partition), offset: offset ?? "", value: value ?? "" };
      });
  }

  it("consumes as a group member, commits, and resumes where it stopped", async () => {
    const topic = "kcat-resume";
    broker.createTopic(topic, 2);
    await produce(topic, range(0, 6), 2);
    const first = await kcat("kcat-group", topic, ["-e"]);
    expect(first.map((r) => r.value).sort()).toEqual(range(0, 6).sort());

    const committed = await admin.fetchOffsets({ groupId: "kcat-group", topics: [topic] });
    expect(committed[0]?.partitions.map((p) => [p.partition, p.offset]).sort()).toEqual([
      [0, "3"],
      [1, "3"],
    ]);

    await produce(topic, range(6, 9), 2);
    const second = await kcat("kcat-group", topic, ["-e"]);
    expect(second.map((r) => r.value).sort()).toEqual(range(6, 9).sort());
  }, 60_000);

  it("splits partitions between two kcat members", async () => {
    const topic = "kcat-split";
    const group = "kcat-split-group";
    broker.createTopic(topic, 4);
    // Each member stops after its 4 records: 2 partitions x 2 records.
    const one = kcat(group, topic, ["-c", "4"]);
    const two = kcat(group, topic, ["-c", "4"]);
    await waitFor(
      "two kcat members in a Stable group",
      async () => {
        const d = await admin.describeGroups([group]);
        return d.groups[0]?.state === "Stable" && d.groups[0]?.members.length === 2;
      },
      40_000,
    );
    await produce(topic, range(0, 8), 4);
    const [a, b] = await Promise.all([one, two]);
    const partitionsOf = (rs: Received[]) => [...new Set(rs.map((r) => r.partition))].sort();
    expect(a).toHaveLength(4);
    expect(b).toHaveLength(4);
    expect(partitionsOf(a)).toHaveLength(2);
    expect([...partitionsOf(a), ...partitionsOf(b)].sort()).toEqual([0, 1, 2, 3]);
    expect([...a, ...b].map((r) => r.value).sort()).toEqual(range(0, 8).sort());
  }, 60_000);

  it("expires a kcat member killed without leaving; the kafkajs member in the same group takes over", async () => {
    const topic = "mixed-expiry";
    const group = "mixed-group";
    broker.createTopic(topic, 2);
    // kafkajs's round-robin under librdkafka's protocol name, so both can share a group.
    const roundrobin: PartitionAssigner = (config) => ({
      ...PartitionAssigners.roundRobin(config),
      name: "roundrobin",
    });
    const js = await startConsumer(consumer(group, { partitionAssigners: [roundrobin] }), topic);
    await waitFor("the kafkajs member to own both partitions", () => js.assigned.length === 2);

    const child = spawn("kcat", [
      "-b",
      broker.bootstrap,
      "-G",
      group,
      topic,
      "-X",
      "partition.assignment.strategy=roundrobin",
      "-X",
      "session.timeout.ms=3000",
      "-X",
      "heartbeat.interval.ms=300",
      "-X",
      "auto.offset.reset=earliest",
      "-q",
      // Unbuffered: the test reads lines as they come.
      "-u",
      "-f",
      "%p %s\\n",
    ]);
    let kcatOut = "";
    child.stdout.on("data", (chunk: Buffer) => {
      kcatOut += chunk.toString();
    });
    try {
      await waitFor("a 1/1 split with kcat", async () => {
        const d = await admin.describeGroups([group]);
        return (
          js.assigned.length === 1 &&
          d.groups[0]?.state === "Stable" &&
          d.groups[0]?.members.length === 2
        );
      });
      await produce(topic, range(0, 4), 2);
      await waitFor("each member to get its partition's 2 records", () => {
        return js.received.length === 2 && kcatOut.trim().split("\n").length === 2;
      });
      const kcatPartitions = new Set(
        kcatOut
          .trim()
          .split("\n")
          .map((line) => Number(line.split(" ")[0])),
      );
      expect([...kcatPartitions]).toHaveLength(1);
      expect(js.assigned.some((p) => kcatPartitions.has(p))).toBe(false);

      // No LeaveGroup: only the session timeout can tell the coordinator.
      child.kill("SIGKILL");
      await waitFor(
        "the kafkajs member to own both partitions again",
        () => js.assigned.length === 2,
      );
      const d = await admin.describeGroups([group]);
      expect(d.groups[0]?.members).toHaveLength(1);
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);
});
