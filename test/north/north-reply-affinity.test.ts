/**
 * Reply affinity (docs/scaling.md): north instances sharing one reply topic through a
 * consumer group each read their own share of its partitions and place new correlation ids
 * there; a call whose id an idempotency key fixes gets its partition read while it waits;
 * and ownership moving under calls in flight (instances joining, one leaving, the topic
 * gaining partitions) loses no reply. West is a kafkajs stand-in that holds every request
 * until the test releases the replies, partitioning them with Kafka's murmur2 of the
 * correlation id, as our west and Zilla's do.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import {
  Echo,
  EchoRequestSchema,
  EchoResponseSchema,
} from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { defaultCorrelationHeaders, defaultEdgeLimits } from "../../src/config/types.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { murmur2 } from "../../src/kafka/murmur2-partitioner.ts";
import {
  parseRequestHeaders,
  replyEndHeaders,
  replyHeaders,
} from "../../src/kafka/record-contract.ts";
import type { ReplyOwnershipOptions } from "../../src/kafka/reply-reader.ts";
import { type North, startNorth } from "../../src/north/north-server.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { exampleNorthConfig, replyTopic, requestTopic } from "../support/example-config.ts";
import { headersFromKafka, toKafkaMessage } from "../support/kafkajs.ts";
import { testLogger } from "./north-fixture.ts";

const partitions = 16;
const names = defaultCorrelationHeaders;
const encoder = new TextEncoder();

let broker: Broker;
let west: HoldingWest;
const norths: North[] = [];

beforeEach(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: partitions });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  west = await startHoldingWest(broker.bootstrap);
});

afterEach(async () => {
  await Promise.all(norths.splice(0).map((n) => n.close(0)));
  await west?.close();
  await broker?.close();
});

afterAll(async () => {
  await broker?.close();
});

/** Kafka's default partition of a correlation id among `count` partitions. */
function partitionOf(id: string, count: number): number {
  return (murmur2(encoder.encode(id)) & 0x7fffffff) % count;
}

interface StartedNorth {
  north: North;
  client: Client<typeof Echo>;
  owned(): number[];
  read(): number[];
  count(): number;
}

/** A north in the reply group, checking partitions often so the test need not wait long. */
async function startGroupNorth(ownership: ReplyOwnershipOptions = {}): Promise<StartedNorth> {
  const config = exampleNorthConfig();
  // Calls wait for the test to release their replies: longer than the default reply timeout.
  config.options = { ...config.options, defaultTimeoutMs: 180_000 };
  // A thousand calls in flight on one connection: past the default of 100 streams.
  config.limits = { ...defaultEdgeLimits(), maxConcurrentStreams: 2_000 };
  const north = await startNorth({
    config,
    kafka: createKafka({ servers: [broker.bootstrap] }, "affinity-test"),
    registry: await loadServiceRegistry(),
    logger: testLogger,
    replyOwnership: {
      partitions: "group",
      groupId: "zilla:affinity-test-replies",
      partitionCheckMs: 200,
      partitionLingerMs: 200,
      ...ownership,
    },
  });
  norths.push(north);
  const client = createClient(
    Echo,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${north.ports[0]}` }),
  );
  const stats = () => north.replyPartitions()[0];
  return {
    north,
    client,
    owned: () => stats()?.owned ?? [],
    read: () => stats()?.read ?? [],
    count: () => stats()?.count ?? 0,
  };
}

/** Resolves once `condition` holds (polling: ownership moves on the group's own schedule). */
async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out waiting until ${what}`);
    },
    { timeout: timeoutMs, interval: 25 },
  );
}

/** The owned sets of `instances` are disjoint and cover `count` partitions. */
function shareOut(instances: StartedNorth[], count: number): boolean {
  const all = instances.flatMap((n) => n.owned());
  return (
    all.length === count &&
    new Set(all).size === count &&
    instances.every((n) => n.owned().length > 0)
  );
}

interface OpenedCall {
  text: string;
  /** Partitions the instance owned when the call was opened (undefined: idempotency key). */
  ownedAtOpen: number[] | undefined;
  count: number;
  reply: Promise<string>;
  settled: boolean;
}

/** Opens `n` unary calls on `instance`; `key(i)` gives an idempotency key to some. */
function openCalls(
  instance: StartedNorth,
  label: string,
  n: number,
  key: (i: number) => string | undefined = () => undefined,
): OpenedCall[] {
  const owned = instance.owned();
  const count = instance.count();
  return Array.from({ length: n }, (_, i) => {
    const text = `${label}-${i}`;
    const idempotencyKey = key(i);
    const reply = instance.client
      .unaryEcho(
        { message: text },
        idempotencyKey ? { headers: { "idempotency-key": idempotencyKey } } : {},
      )
      .then((r) => r.message);
    const call: OpenedCall = {
      text,
      ownedAtOpen: idempotencyKey ? undefined : owned,
      count,
      reply,
      settled: false,
    };
    reply.then(
      () => (call.settled = true),
      () => (call.settled = true),
    );
    return call;
  });
}

/**
 * The calls' replies, failing when one has not come within `timeoutMs` of the release (a
 * reply on time takes milliseconds; a lost one would otherwise wait for the test timeout).
 */
async function repliesWithin(calls: OpenedCall[], timeoutMs = 30_000): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const missing = calls.filter((call) => !call.settled).map((call) => call.text);
      reject(new Error(`${missing.length} replies missing: ${missing.slice(0, 5).join(", ")}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.all(calls.map((call) => call.reply)), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("reply affinity", () => {
  test("ownership.moves.under.1000.calls.in.flight", { timeout: 180_000 }, async () => {
    const a = await startGroupNorth();
    expect(a.owned()).toHaveLength(partitions);

    const a1 = openCalls(a, "a1", 400);
    await west.waitForHeld(400);

    // A second instance joins: the group splits the partitions; A keeps reading those it
    // gave away for as long as its calls wait on them.
    const b = await startGroupNorth();
    await until("a and b share the partitions", () => shareOut([a, b], partitions));
    const b1 = openCalls(b, "b1", 300);
    // Idempotency keys fix the id, so these land wherever murmur2 puts them.
    const a2 = openCalls(a, "a2", 100, (i) => (i % 2 === 0 ? `key-a2-${i}` : undefined));
    await west.waitForHeld(800);
    for (const call of a2.filter((c) => c.ownedAtOpen === undefined)) {
      expect(a.read()).toContain(partitionOf(west.idOf(call.text), partitions));
    }

    // A third joins, then B leaves (drains): 1,000 calls wait through both moves.
    const c = await startGroupNorth();
    await until("a, b and c share the partitions", () => shareOut([a, b, c], partitions));
    const c1 = openCalls(c, "c1", 200);
    await west.waitForHeld(1000);
    const bClosed = b.north.close(120_000);
    await until("a and c share the partitions", () => shareOut([a, c], partitions));

    // Replies to A's and B's calls, on partitions now owned by others (or by nobody's
    // group member, for B): each instance still reads them for its own calls.
    const first = [...a1, ...a2, ...b1];
    await west.release(
      first.map((call) => call.text),
      (id) => partitionOf(id, partitions),
    );
    expect(await repliesWithin(first)).toEqual(first.map((call) => call.text));
    await bClosed;

    // The reply topic gains partitions while C's calls wait; more calls start after.
    broker.growTopic(replyTopic, 20);
    await until("a and c saw 20 partitions", () => [a, c].every((n) => n.count() === 20));
    // Each reads all 20 for the grace period: replies may now land on any of them.
    for (const n of [a, c]) expect(n.read()).toHaveLength(20);
    // The group hands the new partitions out too (an instance that noticed joins again).
    await until("a and c share all 20 partitions", () => shareOut([a, c], 20));
    const later = [...openCalls(c, "c2", 50), ...openCalls(a, "a3", 50)];
    await west.waitForHeld(1100);
    // Half as a west that still partitions among 16 writes them, half among 20.
    const rest = [...c1, ...later];
    await west.release(
      rest.map((call) => call.text),
      (id, i) => partitionOf(id, i % 2 === 0 ? partitions : 20),
    );
    expect(await repliesWithin(rest)).toEqual(rest.map((call) => call.text));

    // Every id without an idempotency key was placed on a partition its instance owned.
    for (const call of [...first, ...rest]) {
      if (call.ownedAtOpen === undefined) continue;
      expect(call.ownedAtOpen).toContain(partitionOf(west.idOf(call.text), call.count));
    }
  });

  test("instances.read.only.their.share", { timeout: 60_000 }, async () => {
    const instances: StartedNorth[] = [];
    for (let i = 0; i < 4; i++) instances.push(await startGroupNorth());
    await until("four instances share the partitions", () => shareOut(instances, partitions));
    // Partitions given away at each join are read for a short linger after it.
    await until("each instance reads its share only", () =>
      instances.every((n) => n.read().length === n.owned().length),
    );
    west.answerAtOnce();
    const before = instances.reduce((sum, n) => sum + n.north.replyRecordsRead(), 0);
    const producedBefore = await west.replyRecords();
    const calls = instances.flatMap((n, i) => openCalls(n, `share-${i}`, 100));
    const replies = await Promise.all(calls.map((call) => call.reply));
    expect(replies).toEqual(calls.map((call) => call.text));
    const produced = (await west.replyRecords()) - producedBefore;
    expect(produced).toBe(800); // one message and one end marker per call
    await until("every reply was read", () => {
      const read = instances.reduce((sum, n) => sum + n.north.replyRecordsRead(), 0) - before;
      return read >= produced;
    });
    const read = instances.reduce((sum, n) => sum + n.north.replyRecordsRead(), 0) - before;
    // Each record is fetched by its partition's owner only (four instances reading every
    // partition would fetch each one four times).
    expect(read / produced).toBeLessThanOrEqual(1.05);
    for (const n of instances) expect(n.read()).toEqual(n.owned());
  });
});

interface HoldingWest {
  /** Resolves once `n` requests have been held (released ones count). */
  waitForHeld(n: number): Promise<void>;
  /** The correlation id of the call whose message was `text`. */
  idOf(text: string): string;
  /** Replies to the held calls with these messages: message and end tombstone on `partition(id, index)`. */
  release(texts: string[], partition: (id: string, index: number) => number): Promise<void>;
  /** From now on, replies to requests as they come (murmur2 of the id among 16). */
  answerAtOnce(): void;
  /** Reply records written so far. */
  replyRecords(): Promise<number>;
  close(): Promise<void>;
}

async function startHoldingWest(bootstrap: string): Promise<HoldingWest> {
  const kafka = new Kafka({
    clientId: "holding-west",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
  });
  // Fresh metadata at each release: it writes to partitions the topic gained meanwhile.
  const producer = kafka.producer({ metadataMaxAge: 100 });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: "holding-west", maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic: requestTopic, fromBeginning: true });
  const texts = new Map<string, string>();
  let held: { id: string; text: string }[] = [];
  // Held and released so far: what `waitForHeld` counts.
  let released = 0;
  let immediate = false;
  let written = 0;

  const reply = async (
    calls: { id: string; text: string }[],
    partition: (id: string, i: number) => number,
  ) => {
    const messages = calls.flatMap(({ id, text }, i) => {
      const value = toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: text }));
      const p = partition(id, i);
      return [
        { ...toKafkaMessage({ key: id, value, headers: replyHeaders(names, id) }), partition: p },
        {
          ...toKafkaMessage({ key: id, value: null, headers: replyEndHeaders(names, id, 0) }),
          partition: p,
        },
      ];
    });
    await producer.send({ topic: replyTopic, acks: 1, messages });
    written += messages.length;
  };

  await new Promise<void>((resolve, reject) => {
    consumer.on(consumer.events.GROUP_JOIN, () => resolve());
    consumer
      .run({
        eachBatch: async ({ batch }) => {
          const done: { id: string; text: string }[] = [];
          for (const message of batch.messages) {
            const request = parseRequestHeaders(headersFromKafka(message.headers), names);
            const id = request.correlationId;
            if (id === undefined) continue;
            if (message.value !== null) {
              const text = fromBinary(EchoRequestSchema, message.value).message;
              texts.set(text, id);
              done.push({ id, text });
            }
          }
          if (immediate) await reply(done, (id) => partitionOf(id, partitions));
          else held.push(...done);
        },
      })
      .catch(reject);
  });

  return {
    async waitForHeld(n) {
      await until(`${n} requests are held`, () => held.length + released >= n);
    },
    idOf(text) {
      const id = texts.get(text);
      if (id === undefined) throw new Error(`no request with message ${text}`);
      return id;
    },
    async release(texts, partition) {
      const wanted = new Set(texts);
      const chosen = held.filter((call) => wanted.has(call.text));
      if (chosen.length !== texts.length) throw new Error("release: some calls are not held");
      held = held.filter((call) => !wanted.has(call.text));
      released += chosen.length;
      await reply(chosen, partition);
    },
    answerAtOnce() {
      immediate = true;
    },
    async replyRecords() {
      return written;
    },
    async close() {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}
