/**
 * West's changelog as another Kafka client sees it: the partition's lease covering a call
 * before the upstream call (no entry of the call's own) and one with the upstream's answer,
 * on the partition the request came from; nothing for an
 * answer west gave itself; a reply too large to keep is not kept, and a duplicate of it is
 * refused rather than run again; where the topic is missing, named, or too small; and the
 * memory store that writes none.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChangelogEntry, decodeEntry, leaseKey } from "../../src/west/changelog-codec.ts";
import {
  type EchoServer,
  echoText,
  endOf,
  requestTopic,
  startEchoServer,
  startWestBench,
  type WestBench,
} from "./west-harness.ts";

const changelog = "zilla-example-west_kafka_grpc_remote_server-echo-requests-changelog";

interface Entry extends ChangelogEntry {
  partition: number;
}

/** Reads `topic` from its beginning with kafkajs: entries by correlation id. */
async function readChangelog(bench: WestBench, topic = changelog) {
  const entries = new Map<string, Entry[]>();
  const consumer = bench.kafka.consumer({
    groupId: `changelog-reader-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const id = message.key?.toString() ?? "";
      const entry = message.value ? decodeEntry(new Uint8Array(message.value), id) : undefined;
      if (entry) entries.set(id, [...(entries.get(id) ?? []), { ...entry, partition }]);
    },
  });
  return { entries, close: () => consumer.disconnect() };
}

const keyed = (name: string) => ({
  id: `${name}-0123456789abcdef0123456789abcdef`,
  metadata: [["idempotency-key", name]] as [string, string][],
});

describe("west changelog", () => {
  let bench: WestBench;
  let echo: EchoServer;
  let reader: Awaited<ReturnType<typeof readChangelog>>;

  beforeAll(async () => {
    bench = await startWestBench(3);
    echo = await startEchoServer();
    await bench.startWest(`127.0.0.1:${echo.port}`);
    reader = await readChangelog(bench);
  });

  afterAll(async () => {
    await reader?.close();
    await bench?.close();
    await echo?.close();
  });

  it("a.lease.covers.the.call.then.finished.with.the.reply.on.the.request.partition", async () => {
    const call = { ...keyed("logged"), partition: 2, messages: ["meta:logged"] };
    await bench.request(call);
    const replies = await bench.reply(call.id);
    await expect.poll(() => reader.entries.get(call.id)?.length, { timeout: 10_000 }).toBe(1);
    const [finished] = reader.entries.get(call.id) ?? [];
    expect(finished).toMatchObject({
      kind: "finished",
      partition: 2,
      attempt: 1,
      requestEnded: true,
    });
    // The request's first record (one before its end, the last one read) is under a lease
    // of its partition, and the lease is not the call's: its key is the empty one.
    const first = (finished?.requestOffset ?? 0n) - 1n;
    const leases = reader.entries.get(leaseKey) ?? [];
    expect(leases.length).toBeGreaterThan(0);
    expect(
      leases.some((e) => e.kind === "lease" && e.partition === 2 && e.requestOffset > first),
    ).toBe(true);
    expect(leases.every((e) => e.kind === "lease")).toBe(true);
    expect(finished?.reply?.status).toBe(0);
    expect(finished?.reply?.replyTo).toBe("echo-responses");
    expect(finished?.reply?.records).toEqual(
      replies.map(({ key, value, headers }) => ({ key, value, headers })),
    );
  });

  it("an.answer.west.gives.itself.writes.nothing", async () => {
    const expired = {
      ...keyed("expired"),
      partition: 1,
      messages: ["x"],
      deadlineMs: Date.now() - 1,
    };
    const after = { ...keyed("after-expired"), partition: 1, messages: ["y"] };
    await bench.request(expired);
    await bench.request(after);
    expect(endOf(await bench.reply(expired.id)).status).toBe(4);
    // Entries of one partition are written in the order its records were handled.
    await expect.poll(() => reader.entries.get(after.id)?.length, { timeout: 10_000 }).toBe(1);
    expect(reader.entries.get(expired.id)).toBeUndefined();
  });

  it("the.changelog.has.the.request.topic.s.partitions", async () => {
    const [topic] = (await bench.admin.fetchTopicMetadata({ topics: [changelog] })).topics;
    expect(topic?.partitions).toHaveLength(3);
  });
});

describe("west changelog limits and choices", () => {
  it("a.duplicate.of.a.reply.too.large.to.keep.is.refused.not.run", async () => {
    const bench = await startWestBench(1);
    const echo = await startEchoServer();
    try {
      await bench.startWest(`127.0.0.1:${echo.port}`, (c) => {
        c.options.replayMaxBytes = 200;
      });
      const call = {
        ...keyed("large"),
        method: "ServerStreamingEcho",
        messages: ["stream:5:large reply"],
      };
      await bench.request(call);
      const first = await bench.reply(call.id);
      expect(first.filter((r) => r.value !== null).map((r) => echoText(r.value))).toHaveLength(5);
      await bench.request(call);
      const [, second] = (await bench.reply(call.id, 2)).filter((r) => r.value === null);
      expect(endOf(second ? [second] : [])).toEqual({
        status: 6,
        message: expect.stringMatching(
          /^already executed within the idempotency window; its reply \(\d+ bytes\) was larger than the 200 bytes kept/,
        ),
      });
      expect(echo.calls.get("ServerStreamingEcho")).toBe(1);
      const reader = await readChangelog(bench);
      await expect.poll(() => reader.entries.get(call.id)?.length, { timeout: 10_000 }).toBe(1);
      expect(reader.entries.get(call.id)?.[0]?.reply).toMatchObject({
        status: 0,
        records: undefined,
      });
      await reader.close();
    } finally {
      await bench.close();
      await echo.close();
    }
  });

  it("a.named.changelog.is.created.under.its.name", async () => {
    const bench = await startWestBench(2);
    const echo = await startEchoServer();
    try {
      const west = await bench.startWest(`127.0.0.1:${echo.port}`, (c) => {
        c.options.changelogTopics = { [requestTopic]: "my-changelog" };
      });
      expect(west.changelogs.get(requestTopic)).toBe("my-changelog");
      const [topic] = (await bench.admin.fetchTopicMetadata({ topics: ["my-changelog"] })).topics;
      expect(topic?.partitions).toHaveLength(2);
    } finally {
      await bench.close();
      await echo.close();
    }
  });

  it("start.up.fails.on.a.changelog.with.fewer.partitions", async () => {
    const bench = await startWestBench(3);
    try {
      bench.broker.createTopic(changelog, 2);
      await expect(bench.startWest("127.0.0.1:1")).rejects.toThrow(
        `changelog topic ${changelog} (idempotency records of request topic ${requestTopic}) has 2 partitions, fewer than request topic ${requestTopic}'s 3`,
      );
    } finally {
      await bench.close();
    }
  });

  it("the.memory.store.writes.no.changelog.and.still.replays.in.process", async () => {
    const bench = await startWestBench(1);
    const echo = await startEchoServer();
    try {
      const west = await bench.startWest(`127.0.0.1:${echo.port}`, (c) => {
        c.options.idempotencyStore = "memory";
      });
      expect(west.changelogs.size).toBe(0);
      const call = { ...keyed("in-memory"), messages: ["kept here"] };
      await bench.request(call);
      await bench.reply(call.id);
      await bench.request(call);
      expect((await bench.reply(call.id, 2)).filter((r) => r.value === null)).toHaveLength(2);
      expect(echo.calls.get("UnaryEcho")).toBe(1);
      expect(await bench.admin.listTopics()).not.toContain(changelog);
    } finally {
      await bench.close();
      await echo.close();
    }
  });
});
