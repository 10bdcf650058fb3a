/**
 * KafkaCluster's produce path over real sockets: acks, key partitioning judged by kafkajs
 * and librdkafka (kcat), retries of retriable errors and lost connections, prompt failure
 * for the rest, an unreachable cluster, and topics created through metadata.
 */

import { createServer, type Server, type Socket } from "node:net";
import { Kafka as KafkaJs, logLevel, Partitioners } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../broker/broker.ts";
import { murmur2 } from "../murmur2-partitioner.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import { KafkaConnectionError, KafkaProtocolError } from "../protocol/errors.ts";
import type { OutgoingRecord } from "../protocol/record-codec.ts";
import { KafkaCluster } from "./kafka-cluster.ts";

import { kcat, kcatRead, requestIsOut, testSettings, waitFor } from "./wire-test-kit.ts";

const text = (s: string) => new TextEncoder().encode(s);
const record = (key: string | null, value: string): OutgoingRecord => ({
  key,
  value: text(value),
  headers: [],
});
const one = (topic: string, ...records: OutgoingRecord[]) => new Map([[topic, records]]);

let broker: Broker;
let cluster: KafkaCluster;

beforeAll(async () => {
  broker = await startBroker({ defaultPartitions: 3 });
  cluster = new KafkaCluster(testSettings(broker.bootstrap));
});

afterAll(async () => {
  cluster?.close();
  await broker?.close();
});

describe("produce", () => {
  it("writes with acks -1, 1 and 0", async () => {
    const topic = "acks";
    broker.createTopic(topic, 1);
    await cluster.produce(-1, 5_000, one(topic, record("k", "all")));
    await cluster.produce(1, 5_000, one(topic, record("k", "leader")));
    await cluster.produce(0, 5_000, one(topic, record("k", "none")));
    // acks 0 resolves once written; the broker appends it right after.
    let payloads: (string | null)[] = [];
    await waitFor(async () => {
      payloads = (await kcatRead(broker.bootstrap, topic)).map((r) => r.payload);
      return payloads.length >= 3;
    }, "three records");
    expect(payloads).toEqual(["all", "leader", "none"]);
  });

  it("keeps a key's records on one partition, in order, where Java's murmur2 puts them", async () => {
    const partitions = 7;
    const ours = "keys-ours";
    const theirs = "keys-kafkajs";
    const rdkafka = "keys-kcat";
    for (const t of [ours, theirs, rdkafka]) broker.createTopic(t, partitions);
    const keys = Array.from({ length: 24 }, (_, i) => `key-${i}-${"ü".repeat(i % 3)}`);
    // Interleaved across keys, several produce calls: order per key must hold anyway.
    for (let round = 0; round < 3; round++) {
      await cluster.produce(-1, 5_000, one(ours, ...keys.map((k) => record(k, `${k}#${round}`))));
    }

    const kafkajs = new KafkaJs({
      clientId: "referee",
      brokers: [broker.bootstrap],
      logLevel: logLevel.NOTHING,
    });
    const producer = kafkajs.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      await producer.send({ topic: theirs, messages: keys.map((k) => ({ key: k, value: k })) });
    } finally {
      await producer.disconnect();
    }
    await kcat(
      [
        "-P",
        "-b",
        broker.bootstrap,
        "-t",
        rdkafka,
        "-K",
        "\t",
        "-X",
        "topic.partitioner=murmur2_random",
      ],
      `${keys.map((k) => `${k}\t${k}`).join("\n")}\n`,
    );

    const partitionOf = async (topic: string) => {
      const map = new Map<string, number>();
      for (const r of await kcatRead(broker.bootstrap, topic))
        map.set(r.key as string, r.partition);
      return map;
    };
    const expected = await partitionOf(theirs);
    expect(await partitionOf(rdkafka)).toEqual(expected);
    // The keys do spread: a constant partition would pass everything else.
    expect(new Set(expected.values()).size).toBeGreaterThan(3);

    const read = await kcatRead(broker.bootstrap, ours);
    expect(read).toHaveLength(keys.length * 3);
    for (const key of keys) {
      const mine = read.filter((r) => r.key === key);
      expect(mine.map((r) => r.partition)).toEqual([0, 1, 2].map(() => expected.get(key)));
      expect(mine.map((r) => r.payload)).toEqual([0, 1, 2].map((round) => `${key}#${round}`));
      const offsets = mine.map((r) => r.offset);
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    }
  });

  it("spreads keyless records over the partitions", async () => {
    const topic = "keyless";
    broker.createTopic(topic, 3);
    for (let i = 0; i < 12; i++) await cluster.produce(1, 5_000, one(topic, record(null, `n${i}`)));
    const read = await kcatRead(broker.bootstrap, topic);
    expect(read).toHaveLength(12);
    expect(new Set(read.map((r) => r.partition)).size).toBe(3);
  });

  it.each([
    [6, "NOT_LEADER_OR_FOLLOWER"],
    [5, "LEADER_NOT_AVAILABLE"],
    [7, "REQUEST_TIMED_OUT"],
  ])("retries injected error %i (%s) and succeeds, writing once", async (code) => {
    const topic = `retry-${code}`;
    broker.createTopic(topic, 1);
    await cluster.partitions(topic);
    broker.faults.failNext(ApiKey.Produce, 2, code);
    await cluster.produce(-1, 5_000, one(topic, record("k", "once")));
    const read = await kcatRead(broker.bootstrap, topic);
    expect(read.map((r) => r.payload)).toEqual(["once"]);
  });

  it.each([
    [10, /MESSAGE_TOO_LARGE \(10\)/],
    [87, /INVALID_RECORD \(87\)/],
    [29, /TOPIC_AUTHORIZATION_FAILED \(29\)/],
  ])("rejects non-retriable error %i promptly, naming it", async (code, name) => {
    const topic = `refused-${code}`;
    broker.createTopic(topic, 1);
    await cluster.partitions(topic);
    broker.faults.failNext(ApiKey.Produce, 1, code);
    const started = Date.now();
    const error = await cluster.produce(-1, 5_000, one(topic, record("k", "v"))).catch((e) => e);
    expect(error).toBeInstanceOf(KafkaProtocolError);
    expect((error as KafkaProtocolError).code).toBe(code);
    expect((error as Error).message).toMatch(name);
    expect((error as Error).message).toContain(topic);
    // No retry round: well under the first backoff plus the retry budget.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await kcatRead(broker.bootstrap, topic)).toEqual([]);
  });

  it("retries when the connection drops with the request unanswered, writing once", async () => {
    const topic = "dropped";
    broker.createTopic(topic, 1);
    await cluster.produce(-1, 5_000, one(topic, record("k", "before")));
    broker.faults.pause();
    const sent = cluster.produce(-1, 5_000, one(topic, record("k", "during")));
    await waitFor(() => requestIsOut(cluster, ApiKey.Produce), "the Produce on its way");
    broker.faults.dropConnections();
    broker.faults.resume();
    await sent;
    const read = await kcatRead(broker.bootstrap, topic);
    expect(read.map((r) => r.payload)).toEqual(["before", "during"]);
  });

  it("retries when the connection drops while the answer is on its way", async () => {
    const topic = "dropped-late";
    broker.createTopic(topic, 1);
    await cluster.partitions(topic);
    broker.faults.setLatency(1_000);
    try {
      const produced = broker.faults.requests(ApiKey.Produce);
      const sent = cluster.produce(-1, 5_000, one(topic, record("k", "late")));
      // Appended at the broker; its answer is held back by the latency.
      await waitFor(() => broker.faults.requests(ApiKey.Produce) > produced, "the append");
      broker.faults.dropConnections();
      broker.faults.setLatency(0);
      await sent;
    } finally {
      broker.faults.setLatency(0);
    }
    // The broker had appended it: the retry writes it again (at least once, like Kafka's
    // non-idempotent producers).
    const read = await kcatRead(broker.bootstrap, topic);
    expect(read.map((r) => r.payload)).toEqual(["late", "late"]);
  });

  it("gives up on an answer that does not come in time and retries on a new connection", async () => {
    const topic = "slow-answer";
    broker.createTopic(topic, 1);
    const impatient = new KafkaCluster(
      testSettings(broker.bootstrap, { requestTimeoutMs: 800, retryTimeoutMs: 10_000 }),
    );
    try {
      await impatient.partitions(topic);
      broker.faults.setLatency(3_000);
      const sent = impatient.produce(-1, 10_000, one(topic, record("k", "slow")));
      // Time passes on purpose: past requestTimeoutMs (800 ms), so the first attempt is given
      // up on; the answers stay slow meanwhile, so no retry can succeed before.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      broker.faults.setLatency(0);
      await sent;
    } finally {
      broker.faults.setLatency(0);
      impatient.close();
    }
    // The first attempt was appended before its answer was given up on: at least once.
    const read = await kcatRead(broker.bootstrap, topic);
    expect(read.length).toBeGreaterThanOrEqual(1);
    expect(new Set(read.map((r) => r.payload))).toEqual(new Set(["slow"]));
  });

  it("creates a topic through metadata where the broker allows it", async () => {
    const topic = "auto-created";
    expect((await cluster.partitions(topic)).map((p) => p.partition)).toEqual([0, 1, 2]);
    await cluster.produce(-1, 5_000, one("auto-created-by-produce", record("k", "v")));
    const read = await kcatRead(broker.bootstrap, "auto-created-by-produce");
    expect(read.map((r) => r.payload)).toEqual(["v"]);
  });

  it("writes to several topics and partitions in one call", async () => {
    broker.createTopic("multi-a", 4);
    broker.createTopic("multi-b", 2);
    const records = new Map([
      ["multi-a", ["a", "b", "c", "d", "e"].map((k) => record(k, `a-${k}`))],
      ["multi-b", ["x", "y"].map((k) => record(k, `b-${k}`))],
    ]);
    await cluster.produce(-1, 5_000, records);
    expect((await kcatRead(broker.bootstrap, "multi-a")).map((r) => r.payload).sort()).toEqual([
      "a-a",
      "a-b",
      "a-c",
      "a-d",
      "a-e",
    ]);
    expect((await kcatRead(broker.bootstrap, "multi-b")).map((r) => r.payload).sort()).toEqual([
      "b-x",
      "b-y",
    ]);
  });
});

describe("failing clusters", () => {
  it("fails an unknown topic (no auto-creation) after the retry budget, naming the error", async () => {
    const strict = await startBroker({ autoCreateTopics: false });
    const client = new KafkaCluster(testSettings(strict.bootstrap, { retryTimeoutMs: 1_500 }));
    try {
      const started = Date.now();
      const error = await client
        .produce(-1, 5_000, one("missing", record("k", "v")))
        .catch((e) => e);
      expect(error).toBeInstanceOf(KafkaProtocolError);
      expect((error as Error).message).toMatch(/UNKNOWN_TOPIC_OR_PARTITION/);
      expect(Date.now() - started).toBeLessThan(1_500 + 5_000);
    } finally {
      client.close();
      await strict.close();
    }
  });

  it("fails within retryTimeoutMs with KafkaConnectionError when nothing listens", async () => {
    // A port that was just free: connections are refused.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const client = new KafkaCluster(testSettings(`127.0.0.1:${port}`, { retryTimeoutMs: 1_500 }));
    try {
      const started = Date.now();
      const error = await client.produce(-1, 5_000, one("t", record("k", "v"))).catch((e) => e);
      const elapsed = Date.now() - started;
      expect(error).toBeInstanceOf(KafkaConnectionError);
      expect((error as Error).message).toContain(`127.0.0.1:${port}`);
      // It did retry for a while, and gave up near its budget.
      expect(elapsed).toBeGreaterThanOrEqual(500);
      expect(elapsed).toBeLessThan(1_500 + 5_000);
    } finally {
      client.close();
    }
  });

  it("fails within retryTimeoutMs when a broker accepts connections but never answers", async () => {
    const accepted = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      accepted.add(socket);
      socket.resume(); // reads and drops requests (and sees the client hang up)
      socket.on("error", () => {});
      socket.on("close", () => accepted.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    const client = new KafkaCluster(
      testSettings(`127.0.0.1:${port}`, { retryTimeoutMs: 1_500, requestTimeoutMs: 30_000 }),
    );
    try {
      const started = Date.now();
      const error = await client.produce(-1, 5_000, one("t", record("k", "v"))).catch((e) => e);
      expect(error).toBeInstanceOf(KafkaConnectionError);
      expect(Date.now() - started).toBeLessThan(1_500 + 5_000);
      // Closing the client also gives up the connection still waiting for its first answer.
      client.close();
      await waitFor(() => accepted.size === 0, "the client to hang up");
    } finally {
      client.close();
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("follows a topic's new partition count once its metadata is older than metadataMaxAgeMs", async () => {
    const topic = "grows";
    broker.createTopic(topic, 2);
    const client = new KafkaCluster(testSettings(broker.bootstrap));
    try {
      // A key that murmur2 puts on partition 1 of 2 and on partition 3 of 4.
      const partitionOf = (k: string, count: number) => (murmur2(text(k)) & 0x7fffffff) % count;
      const key = Array.from({ length: 10_000 }, (_, i) => `k${i}`).find(
        (k) => partitionOf(k, 2) === 1 && partitionOf(k, 4) === 3,
      ) as string;
      await client.produce(1, 5_000, one(topic, record(key, "before")));
      broker.growTopic(topic, 4);
      client.metadataMaxAgeMs = 0;
      // The first produce may still use the cached count; the refresh it started is next.
      await waitFor(async () => {
        await client.produce(1, 5_000, one(topic, record(key, "after")));
        return (await kcatRead(broker.bootstrap, topic)).some((r) => r.partition === 3);
      }, "a record on partition 3");
      const read = await kcatRead(broker.bootstrap, topic);
      expect(read.find((r) => r.payload === "before")?.partition).toBe(1);
    } finally {
      client.close();
    }
  });

  it("the gateway's producers (produceEach) follow a new partition count past metadataMaxAgeMs too", async () => {
    const topic = "grows-each";
    broker.createTopic(topic, 2);
    const client = new KafkaCluster(testSettings(broker.bootstrap));
    try {
      // A key that murmur2 puts on partition 1 of 2 and on partition 3 of 4.
      const partitionOf = (k: string, count: number) => (murmur2(text(k)) & 0x7fffffff) % count;
      const key = Array.from({ length: 10_000 }, (_, i) => `k${i}`).find(
        (k) => partitionOf(k, 2) === 1 && partitionOf(k, 4) === 3,
      ) as string;
      const produceEach = async (value: string) => {
        let failure: Error | undefined;
        await client.produceEach(
          1,
          5_000,
          [{ topic, records: record(key, value), deadlineMs: Date.now() + 5_000 }],
          {
            settle: (_item, error) => {
              failure ??= error;
            },
          },
        );
        if (failure) throw failure;
      };
      await produceEach("before");
      broker.growTopic(topic, 4);
      client.metadataMaxAgeMs = 0;
      // The first produce may still use the cached count; the refresh it started is next.
      await waitFor(async () => {
        await produceEach("after");
        return (await kcatRead(broker.bootstrap, topic)).some((r) => r.partition === 3);
      }, "a record on partition 3");
      const read = await kcatRead(broker.bootstrap, topic);
      expect(read.find((r) => r.payload === "before")?.partition).toBe(1);
    } finally {
      client.close();
    }
  });
});
