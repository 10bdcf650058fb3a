/**
 * Fetch capability scenarios (docs/contract.md: Fetch) over real sockets: embedded broker, kafkajs
 * producers, a gRPC server backed by the capability, Connect gRPC clients.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Kafka as KafkaJs, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type FanoutMessage, FanoutMessageSchema } from "../../gen/example/fanout_pb.ts";
import { startBroker } from "../../src/broker/broker.ts";
import { defaultGrpcKafkaOptions, type FetchFilter } from "../../src/config/types.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { createTopicFanout, FanoutReaderError } from "../../src/kafka/topic-fanout.ts";
import { createFetchCapability } from "../../src/north/fetch/fetch-capability.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import {
  eventually,
  type FetchHarness,
  filtersHeader,
  messageIdPositions,
  messageIdText,
  openStream,
  recordValue,
  startFetchHarness,
  topicHeader,
} from "./fetch-harness.ts";

let harness: FetchHarness;

beforeAll(async () => {
  harness = await startFetchHarness({ idleCloseMs: 300 });
});

afterAll(async () => {
  await harness?.close();
});

const headersFor = (
  topic: string,
  filters?: FetchFilter[],
  extra: Record<string, string> = {},
) => ({
  [topicHeader]: topic,
  ...(filters ? { [filtersHeader]: JSON.stringify(filters) } : {}),
  ...extra,
});

/** Records `p<partition>-<i>` for i in [from, to) on each partition. */
function records(partitions: number, from: number, to: number) {
  const out: Array<{ partition: number; value: Buffer }> = [];
  for (let i = from; i < to; i++) {
    for (let p = 0; p < partitions; p++)
      out.push({ partition: p, value: recordValue(`p${p}-${i}`) });
  }
  return out;
}

/** Message texts grouped by partition (from the `p<n>-` prefix), in arrival order. */
function byPartition(messages: FanoutMessage[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const m of messages) {
    const partition = Number(/^p(\d+)-/.exec(m.message)?.[1]);
    out.set(partition, [...(out.get(partition) ?? []), m.message]);
  }
  return out;
}

const range = (p: number, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `p${p}-${from + i}`);

describe("fetch", () => {
  test("fetch.unfiltered", async () => {
    const topic = "fetch-unfiltered";
    harness.createTopic(topic, 3);
    await harness.produce(topic, records(3, 0, 4));
    const stream = openStream(harness.client(), headersFor(topic));
    try {
      await stream.waitFor(12);
      // Produced after the call started (and after the client half-closed its request).
      await harness.produce(topic, records(3, 4, 8));
      const messages = await stream.waitFor(24);
      const grouped = byPartition(messages);
      for (let p = 0; p < 3; p++) expect(grouped.get(p)).toEqual(range(p, 0, 8));
      // Every message id covers all three partitions; its own partition is past the record.
      for (const m of messages) {
        const positions = messageIdPositions(m);
        const [, partition, index] = /^p(\d+)-(\d+)$/.exec(m.message) ?? [];
        expect([...positions.keys()].sort()).toEqual([0, 1, 2]);
        expect(positions.get(Number(partition))).toBe(Number(index) + 1);
      }
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(stream.messages).toHaveLength(24);
    } finally {
      stream.cancel();
      await stream.ended;
    }
  });

  test("fetch.filtered.key", async () => {
    const topic = "fetch-filtered-key";
    harness.createTopic(topic, 2);
    const keys = ["a", "b", "a", "ab", "", "a"];
    await harness.produce(
      topic,
      keys.map((key, i) => ({
        key,
        partition: i % 2,
        value: recordValue(`p${i % 2}-${i}-${key}`),
      })),
    );
    await harness.produce(topic, [{ partition: 0, value: recordValue("p0-nokey") }]);
    const stream = openStream(harness.client(), headersFor(topic, [{ key: "a" }]));
    try {
      await stream.waitFor(3);
      await harness.produce(topic, [
        { key: "b", partition: 1, value: recordValue("p1-late-b") },
        { key: "a", partition: 1, value: recordValue("p1-late-a") },
      ]);
      const messages = await stream.waitFor(4);
      const texts = messages.map((m) => m.message);
      expect(texts.filter((t) => t.startsWith("p0-"))).toEqual(["p0-0-a", "p0-2-a"]);
      expect(texts.filter((t) => t.startsWith("p1-"))).toEqual(["p1-5-a", "p1-late-a"]);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(stream.messages).toHaveLength(4);
      // Skipped records still move the position: the last id is past the late "b" record.
      expect(messageIdPositions(messages[3] as FanoutMessage).get(1)).toBe(5);
    } finally {
      stream.cancel();
      await stream.ended;
    }
  });

  test("fetch.filtered.headers", async () => {
    const topic = "fetch-filtered-headers";
    harness.createTopic(topic, 1);
    await harness.produce(topic, [
      { value: recordValue("p0-both"), headers: { kind: "good", tier: "1" } },
      { value: recordValue("p0-one"), headers: { kind: "good" } },
      { value: recordValue("p0-wrong"), headers: { kind: "good", tier: "2" } },
      { value: recordValue("p0-none") },
      { value: recordValue("p0-extra"), headers: { tier: "1", kind: "good", more: "x" } },
    ]);
    const stream = openStream(
      harness.client(),
      headersFor(topic, [{ headers: { kind: "good", tier: "1" } }]),
    );
    try {
      const messages = await stream.waitFor(2);
      expect(messages.map((m) => m.message)).toEqual(["p0-both", "p0-extra"]);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(stream.messages).toHaveLength(2);
    } finally {
      stream.cancel();
      await stream.ended;
    }
  });

  test("fetch.filtered.headers.bytes", async () => {
    // Filters compare header bytes: a value that is not UTF-8 must not pass for the text its
    // lossy decoding would give (U+FFFD), and the real U+FFFD must still match.
    const topic = "fetch-filtered-header-bytes";
    harness.createTopic(topic, 1);
    await harness.produce(topic, [
      { value: recordValue("p0-invalid"), headers: { h: Buffer.from([0xff]) } },
      { value: recordValue("p0-replacement"), headers: { h: "\uFFFD" } },
    ]);
    // The filter travels as JSON in an ASCII header, so U+FFFD is written as its escape.
    const stream = openStream(harness.client(), {
      [topicHeader]: topic,
      [filtersHeader]: '[{"headers":{"h":"\\ufffd"}}]',
    });
    try {
      const messages = await stream.waitFor(1);
      expect(messages.map((m) => m.message)).toEqual(["p0-replacement"]);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(stream.messages).toHaveLength(1);
    } finally {
      stream.cancel();
      await stream.ended;
    }
  });

  test("fetch.filters.or", async () => {
    const topic = "fetch-filters-or";
    harness.createTopic(topic, 1);
    await harness.produce(topic, [
      { key: "a", value: recordValue("p0-key-a") },
      { key: "b", value: recordValue("p0-key-b") },
      { key: "b", value: recordValue("p0-header"), headers: { h: "1" } },
      { key: "c", value: recordValue("p0-header-2"), headers: { h: "2" } },
      { key: "a", value: recordValue("p0-both"), headers: { h: "1" } },
    ]);
    const stream = openStream(
      harness.client(),
      headersFor(topic, [{ key: "a" }, { headers: { h: "1" } }]),
    );
    try {
      const messages = await stream.waitFor(3);
      expect(messages.map((m) => m.message)).toEqual(["p0-key-a", "p0-header", "p0-both"]);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(stream.messages).toHaveLength(3);
    } finally {
      stream.cancel();
      await stream.ended;
    }
  });

  test("fetch.reject.request.body", async () => {
    const topic = "fetch-reject";
    harness.createTopic(topic, 1);
    await harness.produce(topic, [{ value: recordValue("p0-0") }]);
    // An Empty carrying a field: the request message is not empty.
    const request = create(EmptySchema);
    request.$unknown = [{ no: 1, wireType: 2, data: Uint8Array.of(1, 0x41) }];
    const stream = openStream(harness.client(), headersFor(topic), request);
    const error = await stream.ended;
    expect(error?.code).toBe(Code.Aborted);
    expect(stream.messages).toHaveLength(0);
  });

  test("fetch.resume.last.message.id", async () => {
    const topic = "fetch-resume";
    harness.createTopic(topic, 3);
    await harness.produce(topic, records(3, 0, 10));
    // Disconnects mid-stream, after 13 of the 30 records.
    const first = openStream(harness.client(), headersFor(topic), {}, 13);
    await first.ended;
    const seen = [...first.messages];
    expect(seen).toHaveLength(13);
    const last = seen[seen.length - 1] as FanoutMessage;
    // Records written while no call was open must not be lost.
    await harness.produce(topic, records(3, 10, 15));
    const second = openStream(
      harness.client(),
      headersFor(topic, undefined, { "last-message-id": messageIdText(last) }),
    );
    try {
      const expectedRest = 45 - seen.length;
      await second.waitFor(expectedRest);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(second.messages).toHaveLength(expectedRest);
      const all = [...seen, ...second.messages].map((m) => m.message);
      expect(new Set(all).size).toBe(all.length); // nothing repeated
      const grouped = byPartition([...seen, ...second.messages]);
      for (let p = 0; p < 3; p++) expect(grouped.get(p)).toEqual(range(p, 0, 15)); // nothing lost
      // The resumed positions were inside the shared ring: no reader of its own was needed.
      expect(harness.capability.stats().catchUpReadersStarted).toBe(0);
    } finally {
      second.cancel();
      await second.ended;
    }
  });

  test("fetch.message.id.vectors", async () => {
    const topic = "fetch-vectors";
    harness.createTopic(topic, 1);
    await harness.produce(
      topic,
      [0, 1, 2, 3].map((i) => ({ value: recordValue(`p0-${i}`) })),
    );
    const stream = openStream(harness.client(), headersFor(topic));
    const messages = await stream.waitFor(4);
    stream.cancel();
    await stream.ended;
    // The second record's id is docs/contract.md: Fetch's vector: partition 0, next offset 2.
    expect(messageIdText(messages[1] as FanoutMessage)).toBe("AQIABA");
    expect(messageIdText(messages[0] as FanoutMessage)).toBe("AQIAAg");
    // Resuming from the vector starts at offset 2.
    const resumed = openStream(
      harness.client(),
      headersFor(topic, undefined, { "last-message-id": "AQIABA" }),
    );
    try {
      const rest = await resumed.waitFor(2);
      expect(rest.map((m) => m.message)).toEqual(["p0-2", "p0-3"]);
      await new Promise((r) => setTimeout(r, 200)); // nothing happens for 200 ms: nothing else arrives
      expect(resumed.messages).toHaveLength(2);
    } finally {
      resumed.cancel();
      await resumed.ended;
    }
  });

  test("fetch.invalid.message.id", async () => {
    const topic = "fetch-invalid-id";
    harness.createTopic(topic, 2);
    await harness.produce(topic, records(2, 0, 3));
    for (const bad of ["not a message id!", "AgIABA", "AQIABAAA"]) {
      const stream = openStream(
        harness.client(),
        headersFor(topic, undefined, { "last-message-id": bad }),
      );
      try {
        const grouped = byPartition(await stream.waitFor(6));
        for (let p = 0; p < 2; p++) expect(grouped.get(p), bad).toEqual(range(p, 0, 3));
      } finally {
        stream.cancel();
        await stream.ended;
      }
    }
  });

  test("fetch.client.cancel", async () => {
    const topic = "fetch-cancel";
    harness.createTopic(topic, 2);
    await harness.produce(topic, records(2, 0, 2));
    const topicStats = () => harness.capability.stats().topics.find((t) => t.topic === topic);
    const streams = Array.from({ length: 5 }, () =>
      openStream(harness.client(), headersFor(topic)),
    );
    await Promise.all(streams.map((s) => s.waitFor(4)));
    expect(topicStats()?.subscriptions).toBe(5);
    for (const s of streams.slice(0, 3)) s.cancel();
    await Promise.all(streams.slice(0, 3).map((s) => s.ended));
    await eventually(() => topicStats()?.subscriptions === 2, 10_000, "3 calls released");
    // The remaining calls are unaffected.
    await harness.produce(topic, records(2, 2, 3));
    for (const s of streams.slice(3)) await s.waitFor(6);
    for (const s of streams.slice(3)) s.cancel();
    await Promise.all(streams.map((s) => s.ended));
    await eventually(() => topicStats()?.subscriptions !== 2, 10_000, "all calls released");
    // Assigned reads: the fetch capability never creates a consumer group.
    expect(await harness.listGroups()).toEqual([]);
    // With no calls left, the topic's shared reader closes after its idle time (300 ms here)
    // and stops fetching (every other test's topic is idle by now too).
    await eventually(() => topicStats() === undefined, 10_000, "the shared reader closed");
    await eventually(
      () => harness.capability.stats().topics.length === 0,
      10_000,
      "every shared reader closed",
    );
    const fetched = harness.capability.stats().fetchRequests;
    // Nothing happens for 2.5 s, longer than two long polls (1 s each): a reader still
    // running would have fetched.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(harness.capability.stats().fetchRequests).toBe(fetched);
  });

  test("fetch.catch.up.beyond.ring", async () => {
    // A call starting further back than the ring holds catches up with its own reader.
    const small = await startFetchHarness({ maxLagRecords: 20, idleCloseMs: 300 });
    try {
      const topic = "fetch-catch-up";
      small.createTopic(topic, 3);
      await small.produce(topic, records(3, 0, 60));
      const stream = openStream(small.client(), headersFor(topic));
      try {
        await stream.waitFor(180);
        expect(small.capability.stats().catchUpReadersStarted).toBe(1);
        const stats = () => small.capability.stats().topics.find((t) => t.topic === topic);
        // Caught up: the call joined the live edge and its own reader is gone.
        await eventually(() => stats()?.catchUpReaders === 0, 10_000, "catch-up reader closed");
        // Neither the shared nor the catch-up reader ever had a consumer group.
        expect(await small.listGroups()).toEqual([]);
        expect(stats()?.ringRecords).toBeLessThanOrEqual(60);
        await small.produce(topic, records(3, 60, 70));
        const grouped = byPartition(await stream.waitFor(210));
        for (let p = 0; p < 3; p++) expect(grouped.get(p)).toEqual(range(p, 0, 70));
      } finally {
        stream.cancel();
        await stream.ended;
      }
    } finally {
      await small.close();
    }
  });

  test("fetch.kafka.unavailable", async () => {
    // No broker behind this address: the call fails with UNAVAILABLE, so clients retry.
    const kafka = createKafka({ servers: ["127.0.0.1:1"] });
    const capability = createFetchCapability({
      kafka,
      logger: silentLogger,
      options: defaultGrpcKafkaOptions(),
    });
    try {
      const stream = capability.stream({
        route: { capability: "fetch", topic: "t" },
        request: new Uint8Array(0),
        metadata: new Headers(),
        signal: new AbortController().signal,
      });
      const error = await (async () => {
        for await (const _ of stream) return undefined;
      })().catch((e: unknown) => e);
      expect(ConnectError.from(error).code).toBe(Code.Unavailable);
    } finally {
      await capability.close();
    }
  });

  test("fetch.catch.up.backpressure", async () => {
    // A catch-up reader buffers at most a few records for a call that reads slowly, and
    // hands the call over to the live edge while records keep arriving.
    const topic = "fetch-catch-up-pressure";
    harness.createTopic(topic, 2);
    // Small produce calls, so that record batches are small.
    for (let i = 0; i < 150; i += 5) await harness.produce(topic, records(2, i, i + 5));
    const fanout = createTopicFanout({
      kafka: createKafka({ servers: [harness.broker.bootstrap] }),
      logger: silentLogger,
      maxLagRecords: 20,
      catchUpBufferRecords: 8,
      catchUpFetchBytes: 256, // about one small batch per fetch
      idleCloseMs: 100,
    });
    const controller = new AbortController();
    try {
      const subscription = await fanout.subscribe(topic, { signal: controller.signal });
      const seen: string[] = [];
      let maxBuffered = 0;
      while (seen.length < 400) {
        const record = await subscription.next();
        if (record === undefined) throw new Error("subscription ended");
        seen.push(fromBinary(FanoutMessageSchema, record.value ?? new Uint8Array()).message);
        // A slow consumer at first (not a wait): unpaused, the reader would buffer the whole
        // backlog meanwhile.
        if (seen.length < 100) await new Promise((r) => setTimeout(r, 10));
        if (seen.length % 50 === 0) {
          // Keep producing while this call is still catching up.
          if (seen.length <= 100)
            await harness.produce(
              topic,
              records(2, 150 + seen.length / 2 - 25, 150 + seen.length / 2),
            );
          await new Promise((r) => setTimeout(r, 20)); // a slow consumer, not a wait
        }
        const buffered = fanout.stats().topics[0]?.catchUpBufferedRecords ?? 0;
        maxBuffered = Math.max(maxBuffered, buffered);
      }
      const grouped = new Map<number, string[]>();
      for (const text of seen) {
        const p = Number(/^p(\d+)-/.exec(text)?.[1]);
        grouped.set(p, [...(grouped.get(p) ?? []), text]);
      }
      for (let p = 0; p < 2; p++) expect(grouped.get(p)).toEqual(range(p, 0, 200));
      expect(fanout.stats().catchUpReadersStarted).toBe(1);
      await eventually(() => fanout.stats().topics[0]?.catchUpReaders === 0, 10_000, "joined");
      // The bound per partition plus what the fetches in flight bring; not the 300 behind.
      expect(maxBuffered).toBeGreaterThan(0);
      expect(maxBuffered).toBeLessThanOrEqual(120);
      // Paused partitions are not fetched meanwhile: about one fetch per small batch, not a
      // fetch loop spinning on data it drops (that made tens of thousands).
      expect(fanout.stats().fetchRequests).toBeLessThan(1_000);
    } finally {
      controller.abort();
      await fanout.close();
    }
  });

  test("fetch.kafka.connections.dropped", async () => {
    // Lost connections are retried without ending the call (fetching works again well within
    // `failAfterMs` each time, though the drops together last longer), nothing lost or repeated.
    const topic = "fetch-dropped";
    harness.createTopic(topic, 2);
    await harness.produce(topic, records(2, 0, 5));
    const fanout = createTopicFanout({
      kafka: createKafka({ servers: [harness.broker.bootstrap] }),
      logger: silentLogger,
      maxWaitTimeMs: 200,
      failAfterMs: 3_000,
    });
    const controller = new AbortController();
    try {
      const subscription = await fanout.subscribe(topic, { signal: controller.signal });
      const seen: FanoutMessage[] = [];
      const read = async (count: number) => {
        while (seen.length < count) {
          const record = await subscription.next();
          if (record === undefined) throw new Error("subscription ended");
          seen.push(fromBinary(FanoutMessageSchema, record.value ?? new Uint8Array()));
        }
      };
      await read(10);
      for (let round = 1; round <= 4; round++) {
        harness.broker.faults.dropConnections();
        await harness.produce(topic, records(2, round * 5, round * 5 + 5));
        await read(10 + round * 10);
        // Time passes on purpose: the four rounds together outlast `failAfterMs`, so the
        // call only survives if each recovery resets its failure clock.
        await new Promise((r) => setTimeout(r, 1_200));
      }
      const grouped = byPartition(seen);
      for (let p = 0; p < 2; p++) expect(grouped.get(p)).toEqual(range(p, 0, 25));
    } finally {
      controller.abort();
      await fanout.close();
    }
  });

  test("fetch.kafka.lost", async () => {
    // The cluster goes away under an open call: once fetching kept failing for `failAfterMs`,
    // the call ends with an "unreachable" reader error (UNAVAILABLE), so its client resumes
    // elsewhere instead of waiting for ever.
    const own = await startFetchHarness();
    const fanout = createTopicFanout({
      kafka: createKafka({ servers: [own.broker.bootstrap] }),
      logger: silentLogger,
      maxWaitTimeMs: 200,
      failAfterMs: 500,
    });
    const controller = new AbortController();
    try {
      const topic = "fetch-lost";
      own.createTopic(topic, 1);
      await own.produce(topic, [{ value: recordValue("p0-0") }]);
      const subscription = await fanout.subscribe(topic, { signal: controller.signal });
      expect((await subscription.next())?.offset).toBe(0);
      const ended = subscription.next().then(
        () => new Error("next() resolved"),
        (error: unknown) => error,
      );
      await own.broker.close();
      const error = await ended;
      expect(error).toBeInstanceOf(FanoutReaderError);
      expect((error as FanoutReaderError).unreachable).toBe(true);
      expect(fanout.stats().topics).toEqual([]);
    } finally {
      controller.abort();
      await fanout.close();
      await own.close();
    }
  });

  test("fetch.new.partitions", async () => {
    // Partitions that appear while a topic is read are found with the next metadata refresh
    // and read from their beginning, by the calls already open too.
    const strict = await startBroker({ port: 0, autoCreateTopics: false });
    const testKafka = new KafkaJs({
      clientId: "fetch-test",
      brokers: [strict.bootstrap],
      logLevel: logLevel.NOTHING,
    });
    const admin = testKafka.admin();
    const producer = testKafka.producer({ allowAutoTopicCreation: false });
    const fanout = createTopicFanout({
      kafka: createKafka({ servers: [strict.bootstrap] }),
      logger: silentLogger,
      maxWaitTimeMs: 200,
      metadataRefreshMs: 300,
    });
    const controller = new AbortController();
    try {
      const topic = "fetch-growing";
      strict.createTopic(topic, 1);
      const subscription = await fanout.subscribe(topic, { signal: controller.signal });
      expect(subscription.positions()).toEqual([[0, 0]]);
      // The broker cannot add partitions to a topic: recreate it larger instead.
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] });
      strict.createTopic(topic, 3);
      await producer.connect();
      await producer.send({ topic, acks: -1, messages: records(3, 0, 2) });
      const seen: FanoutMessage[] = [];
      while (seen.length < 6) {
        const record = await subscription.next();
        if (record === undefined) throw new Error("subscription ended");
        seen.push(fromBinary(FanoutMessageSchema, record.value ?? new Uint8Array()));
      }
      const grouped = byPartition(seen);
      for (let p = 0; p < 3; p++) expect(grouped.get(p)).toEqual(range(p, 0, 2));
      expect(subscription.positions()).toEqual([
        [0, 2],
        [1, 2],
        [2, 2],
      ]);
    } finally {
      controller.abort();
      await fanout.close();
      await producer.disconnect();
      await admin.disconnect();
      await strict.close();
    }
  });

  test("fetch.server.stop", async () => {
    const own = await startFetchHarness();
    const topic = "fetch-stop";
    own.createTopic(topic, 1);
    await own.produce(topic, [{ value: recordValue("p0-0") }]);
    const stream = openStream(own.client(), headersFor(topic));
    try {
      await stream.waitFor(1);
      await own.capability.close();
      const error = await stream.ended;
      // Ended, so that the client resumes elsewhere: UNAVAILABLE, not a clean end.
      expect(error?.code).toBe(Code.Unavailable);
    } finally {
      await own.close();
    }
  });
});
