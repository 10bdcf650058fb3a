/**
 * The partition reader over real sockets: start positions, lost connections during long
 * polls, OFFSET_OUT_OF_RANGE resets, pause/resume/seek, partitions that appear, and stop.
 */

import { Kafka as KafkaJs, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../broker/broker.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import { type FetchedRecord, utf8 } from "../protocol/record-codec.ts";
import { KafkaCluster } from "./kafka-cluster.ts";
import {
  type PartitionReader,
  type PartitionReaderOptions,
  startPartitionReader,
} from "./partition-reader.ts";
import type { WireConnection } from "./wire-connection.ts";
import { requestIsOut, testSettings, waitFor, writeTo } from "./wire-test-kit.ts";

const text = (s: string) => new TextEncoder().encode(s);
/** Only where a test proves that nothing happens for a time (each call says what). */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let broker: Broker;
/** Writes records (its own client, so the reader's connections are not shared). */
let writer: KafkaCluster;
const clusters: KafkaCluster[] = [];
const readers: PartitionReader[] = [];

beforeAll(async () => {
  broker = await startBroker();
  writer = new KafkaCluster(testSettings(broker.bootstrap));
});

// Readers of earlier tests must not take the faults injected for later ones.
afterEach(() => {
  for (const reader of readers.splice(0)) reader.stop();
  for (const cluster of clusters.splice(0)) cluster.close();
});

afterAll(async () => {
  writer?.close();
  await broker?.close();
});

/** Writes `values` to `topic`-`partition`. */
function write(topic: string, partition: number, ...values: string[]): Promise<void> {
  return writeTo(writer, topic, partition, values);
}

interface Seen {
  partition: number;
  offset: number;
  value: string;
}

/** Starts a reader on its own client, collecting what it reads. */
async function reader(
  topics: string[],
  options: Partial<PartitionReaderOptions> & { bootstrap?: string } = {},
) {
  const cluster = new KafkaCluster(testSettings(options.bootstrap ?? broker.bootstrap));
  clusters.push(cluster);
  const seen: Seen[] = [];
  const problems: string[] = [];
  const started = await startPartitionReader({
    cluster,
    topics,
    start: "earliest",
    maxWaitMs: 500,
    partitionMaxBytes: 1 << 20,
    maxBytes: 4 << 20,
    onProblem: (message, error) => problems.push(`${message}: ${(error as Error).message}`),
    ...options,
    onRecords: (topic, partition, records: FetchedRecord[]) => {
      for (const r of records) {
        seen.push({ partition, offset: r.offset, value: utf8(r.value as Uint8Array) });
      }
      return options.onRecords?.(topic, partition, records);
    },
  });
  readers.push(started);
  return { reader: started, cluster, seen, problems };
}

const values = (seen: Seen[], partition?: number) =>
  seen.filter((s) => partition === undefined || s.partition === partition).map((s) => s.value);

/** Whether a Fetch on `cluster`'s fetch connection to broker 1 awaits its answer now. */
function pollIsOut(cluster: KafkaCluster): Promise<boolean> {
  return requestIsOut(cluster, ApiKey.Fetch, 1, "fetch");
}

/** Resolves once `cluster`'s reader has a long poll out. */
function untilPollOut(cluster: KafkaCluster): Promise<void> {
  return waitFor(() => pollIsOut(cluster), "a long poll out");
}

/** Resolves once the long poll that was out has come back (and none went out since). */
function untilNoPollOut(cluster: KafkaCluster): Promise<void> {
  return waitFor(async () => !(await pollIsOut(cluster)), "the poll that was out to come back");
}

/** Counts the Fetch requests sent on `cluster`'s fetch connection to broker 1. */
async function countFetches(cluster: KafkaCluster): Promise<{ count: number }> {
  const connection: WireConnection = await cluster.connection(1, "fetch");
  const counter = { count: 0 };
  const request = connection.request.bind(connection);
  connection.request = (apiKey, version, body, extraWaitMs) => {
    if (apiKey === ApiKey.Fetch) counter.count++;
    return request(apiKey, version, body, extraWaitMs);
  };
  return counter;
}

describe("start positions", () => {
  it("latest reads only what comes after the start; earliest everything; given positions win", async () => {
    const topic = "positions";
    broker.createTopic(topic, 2);
    await write(topic, 0, "a0", "a1", "a2");
    await write(topic, 1, "b0", "b1");
    const latest = await reader([topic], { start: "latest" });
    const earliest = await reader([topic], { start: "earliest" });
    const given = await reader([topic], {
      start: "latest",
      positions: new Map([[`${topic}\u00000`, 1]]),
    });
    expect(latest.reader.positions()).toEqual(
      new Map([
        [`${topic}\u00000`, 3],
        [`${topic}\u00001`, 2],
      ]),
    );
    await write(topic, 0, "a3");
    await write(topic, 1, "b2");
    await waitFor(
      () => latest.seen.length >= 2 && earliest.seen.length >= 7 && given.seen.length >= 4,
      "records",
    );
    await sleep(300); // nothing happens for 300 ms: no reader reads a record twice
    expect(values(latest.seen, 0)).toEqual(["a3"]);
    expect(values(latest.seen, 1)).toEqual(["b2"]);
    expect(values(earliest.seen, 0)).toEqual(["a0", "a1", "a2", "a3"]);
    expect(values(earliest.seen, 1)).toEqual(["b0", "b1", "b2"]);
    expect(values(given.seen, 0)).toEqual(["a1", "a2", "a3"]);
    expect(values(given.seen, 1)).toEqual(["b2"]);
    expect(given.reader.positions().get(`${topic}\u00000`)).toBe(4);
  });
});

describe("faults", () => {
  it("reconnects after dropped connections during long polls, without loss or duplicates", async () => {
    const topic = "drops";
    broker.createTopic(topic, 3);
    const { seen, problems, cluster } = await reader([topic], { maxWaitMs: 5_000 });
    const expected: string[] = [];
    for (let round = 0; round < 4; round++) {
      const batch = [0, 1, 2].map((p) => `r${round}-p${p}`);
      for (const [p, v] of batch.entries()) await write(topic, p, v);
      expected.push(...batch);
      await waitFor(() => seen.length >= expected.length, `round ${round}`);
      // Once the next long poll is out (nothing to read): cut it off.
      await untilPollOut(cluster);
      broker.faults.dropConnections();
    }
    await write(topic, 1, "after");
    expected.push("after");
    await waitFor(() => seen.length >= expected.length, "the record after the last drop");
    await sleep(500); // nothing happens for 500 ms: no record is read twice
    expect([...values(seen)].sort()).toEqual([...expected].sort());
    for (const p of [0, 1, 2]) {
      const offsets = seen.filter((s) => s.partition === p).map((s) => s.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
    expect(problems.some((p) => /fetch from broker 1 failed/.test(p))).toBe(true);
  });

  it("follows a leader change signalled by NOT_LEADER_OR_FOLLOWER on Fetch", async () => {
    const topic = "not-leader";
    broker.createTopic(topic, 1);
    const { seen } = await reader([topic]);
    await write(topic, 0, "x0");
    await waitFor(() => seen.length === 1, "x0");
    broker.faults.failNext(ApiKey.Fetch, 3, 6);
    await write(topic, 0, "x1", "x2");
    await waitFor(() => seen.length >= 3, "x1, x2");
    await sleep(300); // nothing happens for 300 ms: no record is read twice
    expect(values(seen)).toEqual(["x0", "x1", "x2"]);
  });

  it("restarts from the end after OFFSET_OUT_OF_RANGE when it starts at the latest", async () => {
    const topic = "out-of-range-latest";
    broker.createTopic(topic, 1);
    await write(topic, 0, "old0", "old1");
    const {
      reader: r,
      seen,
      cluster,
    } = await reader([topic], {
      start: "latest",
      maxWaitMs: 200,
    });
    const tp = [{ topic, partition: 0 }];
    r.pause(tp);
    await untilNoPollOut(cluster);
    await write(topic, 0, "mid");
    // The first fetch after the resume is refused: the reset to the end skips "mid".
    broker.faults.failNext(ApiKey.Fetch, 1, 1);
    r.resume(tp);
    await waitFor(() => r.positions().get(`${topic}\u00000`) === 3, "the reset");
    await write(topic, 0, "new");
    await waitFor(() => seen.length >= 1, "new");
    await sleep(300); // nothing happens for 300 ms: "mid" is not read after all
    expect(values(seen)).toEqual(["new"]);
    expect(r.positions().get(`${topic}\u00000`)).toBe(4);
  });

  it("restarts from the beginning after OFFSET_OUT_OF_RANGE when it starts at the earliest", async () => {
    const topic = "out-of-range-earliest";
    broker.createTopic(topic, 1);
    await write(topic, 0, "e0", "e1", "e2");
    const { seen } = await reader([topic], {
      start: "earliest",
      maxWaitMs: 200,
      positions: new Map([[`${topic}\u00000`, 2]]),
    });
    await waitFor(() => seen.length >= 1, "e2");
    broker.faults.failNext(ApiKey.Fetch, 1, 1);
    // The reset goes to the log start, not back to the given position.
    await waitFor(() => seen.length >= 4, "the re-read");
    await sleep(300); // nothing happens for 300 ms: the reset happens once
    expect(values(seen)).toEqual(["e2", "e0", "e1", "e2"]);
  });

  it("moves on to the log start when retention removed its position", async () => {
    const small = await startBroker({ retentionBytes: 600 });
    try {
      const topic = "retained";
      small.createTopic(topic, 1);
      const producer = new KafkaCluster(testSettings(small.bootstrap));
      clusters.push(producer);
      const put = (v: string) =>
        producer.produce(
          -1,
          5_000,
          new Map([[topic, [{ key: "k", value: text(v), headers: [] }]]]),
        );
      await put("first");
      const { reader: r, seen, cluster } = await reader([topic], { bootstrap: small.bootstrap });
      await waitFor(() => seen.length === 1, "first");
      r.pause([{ topic, partition: 0 }]);
      await untilNoPollOut(cluster);
      // Enough batches that the head (and the reader's position) is dropped.
      for (let i = 0; i < 12; i++) await put(`v${i}-${"x".repeat(100)}`);
      r.resume([{ topic, partition: 0 }]);
      await waitFor(() => seen.some((s) => s.value.startsWith("v11")), "the last record");
      const after = seen.slice(1);
      // Read on from the new log start: a contiguous tail, nothing before the reset again.
      expect(after.length).toBeGreaterThan(0);
      expect(after.length).toBeLessThan(12);
      expect(after.map((s) => s.offset)).toEqual(after.map((_, i) => (after[0]?.offset ?? 0) + i));
    } finally {
      await small.close();
    }
  });
});

describe("starting up", () => {
  it("waits out LEADER_NOT_AVAILABLE and NOT_LEADER_OR_FOLLOWER while positioning", async () => {
    // What a real cluster answers for a topic it is still creating.
    const topic = "starting";
    broker.createTopic(topic, 2);
    await write(topic, 1, "s");
    broker.faults.failNext(ApiKey.Metadata, 2, 5);
    broker.faults.failNext(ApiKey.ListOffsets, 2, 6);
    const { reader: r, seen } = await reader([topic]);
    expect([...r.positions().values()]).toEqual([0, 0]);
    await waitFor(() => seen.length === 1, "the record");
    expect(values(seen)).toEqual(["s"]);
  });
});

describe("fairness", () => {
  it("does not hold one partition back behind another's backlog", async () => {
    const topic = "fairness";
    broker.createTopic(topic, 2);
    for (let i = 0; i < 30; i++) await write(topic, 0, `big-${i}-${"x".repeat(1_200)}`);
    await write(topic, 1, "small");
    // Each response has room for one batch: the partitions must take turns.
    const { seen } = await reader([topic], {
      maxBytes: 1_000,
      partitionMaxBytes: 1_000,
      maxWaitMs: 100,
    });
    await waitFor(() => seen.some((s) => s.value === "small"), "the small partition's record");
    const before = seen.findIndex((s) => s.value === "small");
    expect(before).toBeLessThan(5);
    await waitFor(() => seen.length === 31, "everything");
  });
});

describe("pause, resume and seek", () => {
  it("pauses one partition while others flow, resumes where it stopped, seeks back", async () => {
    const topic = "pausing";
    broker.createTopic(topic, 2);
    const { reader: r, seen } = await reader([topic]);
    r.pause([{ topic, partition: 0 }]);
    await write(topic, 0, "p0-a", "p0-b");
    await write(topic, 1, "p1-a");
    await waitFor(() => seen.length >= 1, "p1-a");
    await sleep(500); // nothing happens for 500 ms: the paused partition hands nothing on
    expect(values(seen)).toEqual(["p1-a"]);
    r.resume([{ topic, partition: 0 }]);
    await waitFor(() => seen.length >= 3, "p0 after resume");
    expect(values(seen, 0)).toEqual(["p0-a", "p0-b"]);
    r.seek(topic, 0, 1);
    await waitFor(() => seen.length >= 4, "p0 after seek");
    await sleep(300); // nothing happens for 300 ms: the seek re-reads once
    expect(values(seen, 0)).toEqual(["p0-a", "p0-b", "p0-b"]);
    expect(r.positions().get(`${topic}\u00000`)).toBe(2);
  });

  it("seeks from inside onRecords: the next fetch starts there", async () => {
    const topic = "seek-inside";
    broker.createTopic(topic, 1);
    let rewound = false;
    const { seen } = await reader([topic], {
      onRecords: (t, p, records) => {
        if (!rewound && records.some((r) => r.offset === 2)) {
          rewound = true;
          readerRef.seek(t, p, 1);
        }
      },
    });
    const readerRef = readers[readers.length - 1] as PartitionReader;
    await write(topic, 0, "s0", "s1", "s2");
    await waitFor(() => seen.length >= 5, "the re-read after the seek");
    await sleep(300); // nothing happens for 300 ms: the seek re-reads once
    expect(values(seen)).toEqual(["s0", "s1", "s2", "s1", "s2"]);
  });

  it("seeks back while a long poll is out: the poll's answer does not override the seek", async () => {
    const topic = "seek-during-poll";
    broker.createTopic(topic, 1);
    const { reader: r, seen, cluster } = await reader([topic], { maxWaitMs: 3_000 });
    await write(topic, 0, "q0", "q1");
    await waitFor(() => seen.length === 2, "q0, q1");
    await untilPollOut(cluster); // a long poll at offset 2
    r.seek(topic, 0, 0);
    await write(topic, 0, "q2");
    await waitFor(() => seen.length >= 5, "the re-read from 0");
    await sleep(300); // nothing happens for 300 ms: the poll's late answer adds nothing
    expect(values(seen)).toEqual(["q0", "q1", "q0", "q1", "q2"]);
  });

  it("does not fetch while every partition it reads is paused", async () => {
    const topic = "all-paused";
    broker.createTopic(topic, 2);
    await write(topic, 0, "w0");
    await write(topic, 1, "w1");
    const { reader: r, seen, cluster } = await reader([topic], { start: "latest", maxWaitMs: 300 });
    const fetches = await countFetches(cluster);
    r.pause([
      { topic, partition: 0 },
      { topic, partition: 1 },
    ]);
    await write(topic, 0, "while-paused");
    await untilNoPollOut(cluster);
    const before = fetches.count;
    // Nothing happens for 1 s: no loop over data it may not hand out.
    await sleep(1_000);
    expect(fetches.count - before).toBe(0);
    expect(seen).toEqual([]);
    r.resume([{ topic, partition: 0 }]);
    await waitFor(() => seen.length === 1, "the record after resume");
    expect(values(seen)).toEqual(["while-paused"]);
  });
});

describe("the next fetch while records are handed on", () => {
  it("is already out while onRecords still works on the last answer", async () => {
    const topic = "pipelined";
    broker.createTopic(topic, 1);
    let release: () => void = () => {};
    let fetchesWhenHanded = -1;
    let fetches = { count: 0 };
    const { seen } = await reader([topic], {
      maxWaitMs: 2_000,
      onRecords: (_t, _p, records) => {
        if (!records.some((r) => utf8(r.value as Uint8Array) === "first")) return undefined;
        fetchesWhenHanded = fetches.count;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    fetches = await countFetches(clusters[clusters.length - 1] as KafkaCluster);
    await write(topic, 0, "first");
    await waitFor(() => fetchesWhenHanded >= 0, "the first record handed on");
    // The handler has not returned, yet the next long poll is out.
    await expect.poll(() => fetches.count).toBe(fetchesWhenHanded + 1);
    await write(topic, 0, "second");
    await sleep(300); // nothing happens for 300 ms: "second" waits for the handler
    expect(values(seen)).toEqual(["first"]);
    release();
    await waitFor(() => seen.length === 2, "the second record");
    expect(values(seen)).toEqual(["first", "second"]);
  });

  it("keeps the records of a partition paused while another partition's were handed on", async () => {
    const topic = "paused-between";
    broker.createTopic(topic, 2);
    await write(topic, 0, "a0", "a1");
    await write(topic, 1, "b0", "b1");
    let pausedOther: number | undefined;
    const { reader: r, seen } = await reader([topic], {
      onRecords: (t, partition) => {
        if (pausedOther !== undefined) return;
        // Both partitions came in one answer: the one handed on second is paused first.
        pausedOther = 1 - partition;
        readerRef.pause([{ topic: t, partition: pausedOther }]);
      },
    });
    const readerRef = r;
    await waitFor(() => pausedOther !== undefined, "the first partition handed on");
    await sleep(500); // nothing happens for 500 ms: the paused partition hands nothing on
    const other = pausedOther as number;
    expect(values(seen, other)).toEqual([]);
    r.resume([{ topic, partition: other }]);
    await waitFor(() => seen.length === 4, "the paused partition after resume");
    expect(values(seen, 0)).toEqual(["a0", "a1"]);
    expect(values(seen, 1)).toEqual(["b0", "b1"]);
  });
});

describe("topology and stop", () => {
  it("reads partitions that appear while running, from their beginning", async () => {
    const strict = await startBroker({ autoCreateTopics: false });
    const admin = new KafkaJs({
      clientId: "referee",
      brokers: [strict.bootstrap],
      logLevel: logLevel.NOTHING,
    }).admin();
    try {
      const topic = "growing";
      strict.createTopic(topic, 1);
      const { seen } = await reader([topic], {
        bootstrap: strict.bootstrap,
        metadataRefreshMs: 300,
      });
      // The broker cannot add partitions to a topic: recreate it larger instead.
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] });
      strict.createTopic(topic, 3);
      const producer = new KafkaCluster(testSettings(strict.bootstrap));
      clusters.push(producer);
      const partitions = await producer.partitions(topic);
      expect(partitions).toHaveLength(3);
      for (const key of ["a", "b", "c", "d", "e", "f"]) {
        await producer.produce(
          -1,
          5_000,
          new Map([[topic, [{ key, value: text(key), headers: [] }]]]),
        );
      }
      const byPartition = new Set(
        ["a", "b", "c", "d", "e", "f"].map((k) => producer.choosePartition(topic, partitions, k)),
      );
      expect(byPartition.size).toBeGreaterThan(1);
      await waitFor(() => seen.length >= 6, "records on every partition");
      expect([...values(seen)].sort()).toEqual(["a", "b", "c", "d", "e", "f"]);
    } finally {
      await admin.disconnect();
      await strict.close();
    }
  });

  it("stop() ends the fetch loops: nothing more is fetched or handed out", async () => {
    const topic = "stopping";
    broker.createTopic(topic, 2);
    const { reader: r, seen, cluster } = await reader([topic], { maxWaitMs: 300 });
    const fetches = await countFetches(cluster);
    await write(topic, 0, "before");
    await waitFor(() => seen.length === 1, "before");
    r.stop();
    await untilNoPollOut(cluster);
    const after = fetches.count;
    await write(topic, 1, "after");
    await sleep(1_000); // nothing happens for 1 s: no fetch, no record
    expect(fetches.count).toBe(after);
    expect(values(seen)).toEqual(["before"]);
  });
});
