import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { createKafka, type Kafka } from "../kafka/kafka-client.ts";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { silentLogger } from "../ops/logger.ts";
import { createKafkaJournal, type JournalCall, memoryJournal } from "./call-journal.ts";
import { decodeEntry } from "./changelog-codec.ts";
import { startChangelogWriter } from "./changelog-writer.ts";

const call: JournalCall = {
  id: "call-1",
  position: { topic: "req", partition: 1, offset: 9n },
  firstOffset: 7n,
  keyed: true,
  requestEnded: true,
  attempt: 2,
  replyTo: "replies",
};

describe("memoryJournal", () => {
  it("writes nothing and is done at once", async () => {
    expect(memoryJournal.durable).toBe(false);
    expect(await memoryJournal.started(call)).toBe("written");
    expect(await memoryJournal.finished(call, 0, 1, [])).toBe("written");
    expect(await memoryJournal.aborted(call)).toBe("written");
  });
});

describe("createKafkaJournal", () => {
  let broker: Broker;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    broker.createTopic("req-changelog", 2);
    kafka = createKafka({ servers: [broker.bootstrap] }, "journal-test");
  });

  afterAll(async () => {
    await broker?.close();
  });

  const journalWith = async (state = { crashed: false, closing: false }) => {
    const writer = await startChangelogWriter(kafka, { acks: "in_sync_replicas" });
    const journal = createKafkaJournal({
      writer,
      changelogOf: (topic) => `${topic}-changelog`,
      crashed: () => state.crashed,
      closing: () => state.closing,
      logger: silentLogger,
    });
    return { journal, writer, state };
  };

  it("writes STARTED, FINISHED and ABORTED to the request's partition of the changelog", async () => {
    const { journal, writer } = await journalWith();
    const reply = [
      { key: "call-1", value: null, headers: [["zilla:status", "0"]] as [string, string][] },
    ];
    expect(await journal.started(call)).toBe("written");
    expect(await journal.finished(call, 0, 20, reply)).toBe("written");
    expect(await journal.aborted(call)).toBe("written");
    await writer.close();
    const consumer = kafkajsFor(kafka).consumer({
      groupId: "journal-reader",
      maxWaitTimeInMs: 100,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: "req-changelog", fromBeginning: true });
    const seen: unknown[] = [];
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const entry = decodeEntry(
          new Uint8Array(message.value ?? []),
          message.key?.toString() ?? "",
        );
        seen.push({
          partition,
          kind: entry?.kind,
          at: entry?.requestOffset,
          attempt: entry?.attempt,
          reply: entry?.reply,
        });
      },
    });
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(3);
    await consumer.disconnect();
    expect(seen).toEqual([
      { partition: 1, kind: "started", at: 7n, attempt: 2, reply: undefined },
      {
        partition: 1,
        kind: "finished",
        at: 9n,
        attempt: 2,
        reply: { status: 0, replyBytes: 20, replyTo: "replies", records: reply },
      },
      { partition: 1, kind: "aborted", at: 9n, attempt: 2, reply: undefined },
    ]);
  });

  it("a first attempt writes its partition's lease, not a STARTED entry, and the next waits for none", async () => {
    const { journal, writer } = await journalWith();
    const first = { ...call, id: "first-1", attempt: 1, firstOffset: 50n };
    expect(await journal.started(first)).toBe("written");
    expect(journal.started({ ...first, id: "first-2", firstOffset: 51n })).toBe("written");
    await writer.close();
    const consumer = kafkajsFor(kafka).consumer({ groupId: "lease-reader", maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: "req-changelog", fromBeginning: true });
    const seen: unknown[] = [];
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const key = message.key?.toString() ?? "<null>";
        const entry = decodeEntry(new Uint8Array(message.value ?? []), key);
        seen.push({ partition, key, kind: entry?.kind, end: entry?.requestOffset });
      },
    });
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
    await consumer.disconnect();
    // After the first test's three entries: one lease, past both calls (32 offsets ahead).
    expect(seen.slice(3)).toEqual([{ partition: 1, key: "", kind: "lease", end: 83n }]);
  });

  it("says too-large when Kafka refuses a kept reply as too large", async () => {
    const { journal, writer } = await journalWith();
    broker.faults.failNext(ApiKey.Produce, 1, 10); // MESSAGE_TOO_LARGE
    expect(await journal.finished(call, 0, 1, [])).toBe("too-large");
    await writer.close();
  });

  it("retries a failed write until acknowledged, and gives up when west stops", async () => {
    const { journal, writer, state } = await journalWith();
    broker.faults.failNext(ApiKey.Produce, 1, 87); // INVALID_RECORD: not retriable by the client
    expect(await journal.started(call)).toBe("written");
    state.closing = true;
    broker.faults.failNext(ApiKey.Produce, 1, 87);
    expect(await journal.started(call)).toBe("stopped");
    state.crashed = true;
    expect(await journal.aborted(call)).toBe("stopped");
    await writer.close();
  });
});
