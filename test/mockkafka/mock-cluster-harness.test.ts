/**
 * The mock-cluster harness itself (test/support/mockkafka.ts): it starts librdkafka's mock
 * with the brokers and topics asked for, its fault commands take effect and report refusals,
 * it stops, and a missing source fails with a message that says what to do.
 */
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildMockKafka, type MockKafka, startMockKafka } from "../support/mockkafka.ts";

describe("mock cluster harness", () => {
  let mock: MockKafka;
  let kafka: Kafka;

  beforeAll(async () => {
    mock = await startMockKafka({ brokers: 3, topics: { orders: 3, single: 1 } });
    kafka = new Kafka({
      clientId: "harness",
      brokers: mock.brokers,
      logLevel: logLevel.NOTHING,
    });
  });
  afterAll(async () => {
    await mock?.close();
  });

  it("serves the brokers and topics asked for", async () => {
    expect(mock.brokers).toHaveLength(3);
    expect(mock.bootstrap.split(",")).toEqual(mock.brokers);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: ["orders", "single"] });
      const partitions = Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]));
      expect(partitions).toEqual({ orders: 3, single: 1 });
      const cluster = await admin.describeCluster();
      expect(cluster.brokers.map((b) => b.nodeId).sort()).toEqual([1, 2, 3]);
    } finally {
      await admin.disconnect();
    }
  });

  it("moves a partition's leader where `leader` says", async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      for (const broker of [2, 3]) {
        await mock.leader("orders", 0, broker);
        const { topics } = await admin.fetchTopicMetadata({ topics: ["orders"] });
        const p0 = topics[0]?.partitions.find((p) => p.partitionId === 0);
        expect(p0?.leader).toBe(broker);
      }
    } finally {
      await admin.disconnect();
    }
  });

  it("answers the next produce requests with the queued error, then no more", async () => {
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      await mock.errors(0, 6, 1);
      await expect(
        producer.send({ topic: "single", acks: 1, messages: [{ value: "a" }] }),
      ).rejects.toThrow(/leader/i);
      const [sent] = await producer.send({ topic: "single", acks: 1, messages: [{ value: "b" }] });
      expect(sent?.errorCode).toBe(0);
      await mock.errors(0, 6, 3);
      await mock.clear(0);
      const [afterClear] = await producer.send({
        topic: "single",
        acks: 1,
        messages: [{ value: "c" }],
      });
      expect(afterClear?.errorCode).toBe(0);
    } finally {
      await producer.disconnect();
    }
  });

  it("reports a command the mock refuses, and checks arguments before sending", async () => {
    await expect(mock.leader("single", 5, 1)).rejects.toThrow(/UNKNOWN_TOPIC_OR_PART/);
    expect(() => mock.down(4)).toThrow(RangeError);
    expect(() => mock.leader("two words", 0, 1)).toThrow(RangeError);
    // The command after a refused one still gets its own answer.
    await mock.rtt(1, 0);
  });

  it("a broker that is down refuses connections until it is up again", async () => {
    const [host, port] = (mock.brokers[2] as string).split(":");
    await mock.down(3);
    await expect(connect(host as string, Number(port))).resolves.toBe("closed");
    await mock.up(3);
    const admin = new Kafka({
      clientId: "harness-up",
      brokers: [mock.brokers[2] as string],
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    expect(cluster.brokers).toHaveLength(3);
    await admin.disconnect();
  });
});

describe("mock cluster lifecycle", () => {
  it("close stops the process and later commands fail", async () => {
    const mock = await startMockKafka({ brokers: 1 });
    await mock.close();
    await mock.close();
    await expect(mock.rtt(1, 0)).rejects.toThrow(/mock cluster exited/);
  });

  it("a missing source fails the build with what to do", async () => {
    await expect(buildMockKafka({ MOCKKAFKA_SOURCE: "/nonexistent/mockkafka.c" })).rejects.toThrow(
      /could not be built.*source not found.*MOCKKAFKA_SOURCE/s,
    );
  });
});

/** Opens a TCP connection: "closed" when refused or closed by the peer before any data. */
async function connect(host: string, port: number): Promise<"open" | "closed"> {
  const { connect: tcpConnect } = await import("node:net");
  return await new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    socket.once("error", () => resolve("closed"));
    socket.once("close", () => resolve("closed"));
    socket.once("connect", () => {
      // The mock accepts and closes at once when down, or keeps the socket when up.
      socket.once("close", () => resolve("closed"));
      socket.setTimeout(1_000, () => {
        socket.destroy();
        resolve("open");
      });
    });
  });
}
