import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { createKafka, type Kafka } from "../kafka/kafka-client.ts";
import type { FetchedRecord } from "../kafka/protocol/record-codec.ts";
import { silentLogger } from "../ops/logger.ts";
import { type ChangelogEntry, encodeEntry, leaseEntry } from "./changelog-codec.ts";
import { createRestoreFold, restoreChangelog } from "./changelog-restore.ts";

const encoder = new TextEncoder();
const now = 10_000_000;
const windowStartMs = now - 60_000;

function entry(kind: ChangelogEntry["kind"], keyed: boolean, offset: number, attempt = 1) {
  const e: ChangelogEntry = {
    kind,
    keyed,
    requestEnded: true,
    requestOffset: BigInt(offset),
    attempt,
  };
  if (kind === "finished") e.reply = { status: 0, replyBytes: 10, replyTo: "r", records: [] };
  return encodeEntry(e);
}

let offset = 0;
function record(id: string, value: Uint8Array | null, timestamp = now): FetchedRecord {
  return { offset: offset++, timestamp, key: encoder.encode(id), value, headers: [] };
}

describe("createRestoreFold", () => {
  it("keeps the latest entry per call", () => {
    const fold = createRestoreFold({ windowStartMs, committed: 0n });
    fold.add(record("a", entry("started", true, 5)));
    fold.add(record("a", entry("finished", true, 5)));
    fold.add(record("b", entry("finished", true, 6)));
    fold.add(record("b", entry("started", true, 8, 2)));
    const calls = new Map(fold.calls().map((c) => [c.id, c.entry]));
    expect(calls.get("a")?.kind).toBe("finished");
    expect(calls.get("b")).toMatchObject({ kind: "started", attempt: 2, requestOffset: 8n });
    expect(fold.entries).toBe(4);
  });

  it("drops un-keyed calls below the committed offset, keeps them above it whatever their age", () => {
    const fold = createRestoreFold({ windowStartMs, committed: 100n });
    fold.add(record("below", entry("finished", false, 99)));
    fold.add(record("at", entry("finished", false, 100)));
    fold.add(record("old-above", entry("started", false, 150), now - 3_600_000));
    expect(fold.calls().map((c) => c.id)).toEqual(["at", "old-above"]);
  });

  it("keeps keyed calls for the window, and older ones only when not yet committed", () => {
    const fold = createRestoreFold({ windowStartMs, committed: 100n });
    fold.add(record("in-window", entry("finished", true, 10), windowStartMs));
    fold.add(record("too-old", entry("finished", true, 10), windowStartMs - 1));
    fold.add(record("old-uncommitted", entry("aborted", true, 120), windowStartMs - 1));
    expect(fold.calls().map((c) => c.id)).toEqual(["in-window", "old-uncommitted"]);
  });

  it("keeps everything recent when nothing is committed", () => {
    const fold = createRestoreFold({ windowStartMs, committed: undefined });
    fold.add(record("u", entry("finished", false, 0), 0));
    expect(fold.calls().map((c) => c.id)).toEqual(["u"]);
  });

  it("lets a later entry it cannot keep, a tombstone or a later version, replace an earlier one", () => {
    const fold = createRestoreFold({ windowStartMs, committed: 100n });
    fold.add(record("a", entry("finished", true, 10)));
    fold.add(record("a", entry("finished", false, 10)));
    fold.add(record("b", entry("finished", true, 10)));
    fold.add(record("b", null));
    fold.add(record("c", entry("finished", true, 10)));
    const later = entry("finished", true, 10);
    later[0] = 2;
    fold.add(record("c", later));
    expect(fold.calls()).toEqual([]);
  });

  it("takes the furthest lease, apart from the calls, whatever order the leases came in", () => {
    const fold = createRestoreFold({ windowStartMs, committed: 100n });
    expect(fold.lease()).toBeUndefined();
    fold.add(record("a", entry("finished", true, 120)));
    fold.add(record("", encodeEntry(leaseEntry(300n)), windowStartMs - 3_600_000));
    fold.add(record("", encodeEntry(leaseEntry(250n))));
    // Under the empty key, only a lease counts; a call's entry there is not a call.
    fold.add(record("", entry("started", true, 400)));
    fold.add(record("", null));
    expect(fold.lease()).toBe(300n);
    expect(fold.calls().map((c) => c.id)).toEqual(["a"]);
    expect(fold.entries).toBe(5);
  });

  it("counts and skips entries it cannot decode", () => {
    const fold = createRestoreFold({ windowStartMs, committed: undefined });
    fold.add(record("cut", entry("finished", true, 10).subarray(0, 5)));
    fold.add({ ...record("x", entry("finished", true, 10)), key: null });
    expect(fold.broken).toBe(1);
    expect(fold.calls()).toEqual([]);
  });
});

describe("restoreChangelog over the embedded broker", () => {
  let broker: Broker;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    kafka = createKafka({ servers: [broker.bootstrap] }, "restore-test");
  });

  afterAll(async () => {
    await broker?.close();
  });

  it("reads each partition from the window's start to its end and keeps what matters", async () => {
    const topic = "restore-changelog";
    broker.createTopic(topic, 2);
    const producer = kafkajsFor(kafka).producer();
    await producer.connect();
    const t = Date.now();
    const put = (partition: number, id: string, value: Uint8Array, timestamp: number) => ({
      partition,
      key: id,
      value: Buffer.from(value),
      timestamp: String(timestamp),
    });
    // Partition 0: one entry from before the window (in a batch of its own, never read)...
    await producer.send({
      topic,
      acks: -1,
      messages: [put(0, "old", entry("finished", true, 1), t - 600_000)],
    });
    await producer.send({
      topic,
      acks: -1,
      messages: [
        // ...then keyed calls and an un-keyed one below the committed offset.
        put(0, "k1", entry("started", true, 2), t - 1_000),
        put(0, "k1", entry("finished", true, 2), t - 900),
        put(0, "k2", entry("started", true, 3), t - 800),
        put(0, "u1", entry("finished", false, 4), t - 700),
        put(0, "", encodeEntry(leaseEntry(40n)), t - 600),
        // Partition 1: nothing inside the window; an uncommitted call from long ago.
        put(1, "u-old", entry("started", false, 50), t - 600_000),
      ],
    });
    await producer.disconnect();
    const result = await restoreChangelog({
      kafka,
      changelog: topic,
      partitions: [
        { partition: 0, committed: 5n },
        { partition: 1, committed: 10n },
      ],
      windowMs: 60_000,
      logger: silentLogger,
    });
    const ids = (p: number) => (result.calls.get(p) ?? []).map((c) => `${c.id}:${c.entry.kind}`);
    expect(ids(0)).toEqual(["k1:finished", "k2:started"]);
    // No record at or after the window's start: read from the earliest, old but uncommitted.
    expect(ids(1)).toEqual(["u-old:started"]);
    // Partition 0's lease, read beside its calls; partition 1 has none.
    expect(result.leases).toEqual(new Map([[0, 40n]]));
    // The entry before the window on partition 0 was never fetched.
    expect(result.entries).toBe(5 + 1);
    expect(result.bytes).toBeGreaterThan(0);
  });

  it("reads further back when uncommitted requests are older than the window", async () => {
    broker.createTopic("late-requests", 1);
    broker.createTopic("late-changelog", 1);
    const producer = kafkajsFor(kafka).producer();
    await producer.connect();
    const t = Date.now();
    // A request written 10 min ago, never committed (west was down longer than the window).
    await producer.send({
      topic: "late-requests",
      messages: [{ key: "u", value: "x", timestamp: String(t - 600_000) }],
    });
    // Its FINISHED entry, then a recent entry of another call (so the window's start exists).
    await producer.send({
      topic: "late-changelog",
      messages: [
        {
          key: "u",
          value: Buffer.from(entry("finished", false, 0)),
          timestamp: String(t - 599_000),
        },
      ],
    });
    await producer.send({
      topic: "late-changelog",
      messages: [
        { key: "k", value: Buffer.from(entry("finished", true, 1)), timestamp: String(t - 1_000) },
      ],
    });
    await producer.disconnect();
    const restore = (requestTopic?: string) =>
      restoreChangelog({
        kafka,
        changelog: "late-changelog",
        ...(requestTopic ? { requestTopic } : {}),
        partitions: [{ partition: 0, committed: 0n }],
        windowMs: 60_000,
        logger: silentLogger,
      });
    const ids = async (requestTopic?: string) =>
      ((await restore(requestTopic)).calls.get(0) ?? []).map((c) => c.id);
    expect(await ids()).toEqual(["k"]);
    expect(await ids("late-requests")).toEqual(["u", "k"]);
  });

  it("restores nothing from an empty changelog", async () => {
    broker.createTopic("restore-empty", 1);
    const result = await restoreChangelog({
      kafka,
      changelog: "restore-empty",
      partitions: [{ partition: 0, committed: undefined }],
      windowMs: 60_000,
      logger: silentLogger,
    });
    expect(result.calls.get(0)).toEqual([]);
    expect(result.entries).toBe(0);
  });
});
