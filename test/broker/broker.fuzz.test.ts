/**
 * Malformed traffic against the embedded broker (deterministic seed): random bytes,
 * truncated headers, absurd sizes, unknown versions, garbage bodies and mutated valid
 * requests over many connections. Afterwards the broker must still serve a real kafkajs
 * producer, admin and consumer correctly, and must never have hit an internal error.
 */
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { WireClient } from "../../src/broker/wire-client.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { encodeRecordBatch } from "../../src/kafka/protocol/record-batch.ts";
import { Writer } from "../../src/kafka/protocol/wire.ts";

const SEED = 0x5eed_2024;
const CONNECTIONS = 200;
const FRAMES_PER_CONNECTION = 30;
/** A fuzzed Fetch may legally long-poll for a long time; we do not wait for it. */
const CONNECTION_DEADLINE_MS = 400;

/** mulberry32: small, fast, deterministic. */
function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number): number => Math.floor(next() * max);
  return {
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)] as T,
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    },
  };
}

type Random = ReturnType<typeof createRandom>;

function frame(
  apiKey: number,
  version: number,
  correlationId: number,
  body: Uint8Array,
): Uint8Array {
  const w = new Writer(64 + body.length);
  const sizeAt = w.reserveInt32();
  w.int16(apiKey).int16(version).int32(correlationId).nullableString("fuzz");
  w.raw(body);
  w.patchInt32(sizeAt, w.length - 4);
  return w.bytesView().slice();
}

function body(write: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  write(w);
  return w.bytesView().slice();
}

/** Well-formed requests for the core APIs, as [apiKey, version, body]. */
function validRequests(): [number, number, Uint8Array][] {
  const batch = encodeRecordBatch([{ key: new Uint8Array([1]), value: new Uint8Array([2, 3]) }]);
  const out: [number, number, Uint8Array][] = [];
  for (let v = 0; v <= 2; v++) out.push([ApiKey.ApiVersions, v, new Uint8Array(0)]);
  for (let v = 0; v <= 8; v++) {
    out.push([
      ApiKey.Metadata,
      v,
      body((w) => {
        w.array(["fuzz-topic"], (w, t) => w.string(t));
        if (v >= 4) w.bool(true);
        if (v >= 8) w.bool(false).bool(false);
      }),
    ]);
  }
  for (let v = 3; v <= 8; v++) {
    out.push([
      ApiKey.Produce,
      v,
      body((w) => {
        w.nullableString(null).int16(1).int32(1000);
        w.int32(1).string("fuzz-topic").int32(1).int32(0).bytes(batch);
      }),
    ]);
  }
  for (let v = 4; v <= 11; v++) {
    out.push([
      ApiKey.Fetch,
      v,
      body((w) => {
        w.int32(-1)
          .int32(0)
          .int32(1)
          .int32(1 << 20)
          .int8(0);
        if (v >= 7) w.int32(0).int32(-1);
        w.int32(1).string("fuzz-topic").int32(1).int32(0);
        if (v >= 9) w.int32(-1);
        w.int64(0);
        if (v >= 5) w.int64(-1);
        w.int32(1 << 20);
        if (v >= 7) w.int32(0);
        if (v >= 11) w.string("");
      }),
    ]);
  }
  for (let v = 1; v <= 5; v++) {
    out.push([
      ApiKey.ListOffsets,
      v,
      body((w) => {
        w.int32(-1);
        if (v >= 2) w.int8(0);
        w.int32(1).string("fuzz-topic").int32(1).int32(0);
        if (v >= 4) w.int32(-1);
        w.int64(-2);
      }),
    ]);
  }
  for (let v = 0; v <= 4; v++) {
    out.push([
      ApiKey.CreateTopics,
      v,
      body((w) => {
        w.int32(1).string("fuzz-created").int32(2).int16(1).int32(0).int32(0).int32(1000);
        if (v >= 1) w.bool(false);
      }),
    ]);
  }
  for (let v = 0; v <= 3; v++) {
    out.push([ApiKey.DeleteTopics, v, body((w) => w.int32(1).string("fuzz-created").int32(1000))]);
  }
  for (let v = 0; v <= 1; v++) {
    out.push([ApiKey.InitProducerId, v, body((w) => w.nullableString(null).int32(1000))]);
  }
  return out;
}

const GROUP_APIS = [8, 9, 10, 11, 12, 13, 14, 15, 16, 42];

function mutate(random: Random, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const flips = 1 + random.int(4);
  for (let i = 0; i < flips && out.length > 0; i++) {
    const at = random.int(out.length);
    switch (random.int(3)) {
      case 0:
        out[at] = random.int(256);
        break;
      case 1:
        out[at] = 0xff;
        break;
      default:
        out[at] = (out[at] as number) ^ (1 << random.int(8));
    }
  }
  const cut = random.int(4) === 0 ? random.int(out.length + 1) : out.length;
  return out.subarray(0, cut);
}

/**
 * One malformed (or occasionally valid) frame, with the size prefix as the case needs.
 * `framedOnly` keeps the size prefix honest, so the broker reads deeper into the stream
 * instead of giving up on the first bad size.
 */
function nextFrame(
  random: Random,
  templates: [number, number, Uint8Array][],
  id: number,
  framedOnly: boolean,
): Uint8Array {
  switch (framedOnly ? 3 + random.int(3) : random.int(7)) {
    case 0:
      return random.bytes(1 + random.int(64)); // random bytes, random "size"
    case 1: {
      // A plausible size but a truncated header.
      const header = random.bytes(random.int(10));
      const w = new Writer().int32(header.length).raw(header);
      return w.bytesView().slice();
    }
    case 2: {
      // Absurd or negative sizes.
      const size = random.pick([-1, -0x7fffffff, 0x7fffffff, 100 * 1024 * 1024 + 1, 3, 0]);
      return new Writer().int32(size).raw(random.bytes(8)).bytesView().slice();
    }
    case 3: {
      // Valid header, unknown key or version.
      const apiKey = random.pick([
        -1,
        4,
        5,
        6,
        7,
        17,
        21,
        33,
        200,
        32767,
        ApiKey.Produce,
        ApiKey.Fetch,
      ]);
      return frame(apiKey, random.pick([-1, 0, 99, 32767]), id, random.bytes(random.int(32)));
    }
    case 4: {
      // Valid header, garbage body (core and group APIs).
      const [apiKey, version] =
        random.int(3) === 0
          ? [random.pick(GROUP_APIS), random.int(6)]
          : (() => {
              const [k, v] = random.pick(templates);
              return [k, v];
            })();
      return frame(apiKey, version, id, random.bytes(random.int(80)));
    }
    case 5: {
      // A valid request mutated in its body.
      const [apiKey, version, valid] = random.pick(templates);
      return frame(apiKey, version, id, mutate(random, valid));
    }
    default: {
      // A valid request mutated anywhere, header and size prefix included.
      const [apiKey, version, valid] = random.pick(templates);
      return mutate(random, frame(apiKey, version, id, valid));
    }
  }
}

let broker: Broker;
const logLines: string[] = [];

beforeAll(async () => {
  broker = await startBroker({ port: 0, log: (line) => logLines.push(line) });
});

afterAll(async () => {
  await broker?.close();
});

describe("malformed traffic", () => {
  it("closes or answers each bad connection, and then serves real clients correctly", async () => {
    const random = createRandom(SEED);
    const templates = validRequests();
    let closedByBroker = 0;
    const batches: Promise<void>[] = [];
    for (let c = 0; c < CONNECTIONS; c++) {
      const framedOnly = c % 2 === 1;
      const frames = Array.from({ length: FRAMES_PER_CONNECTION }, (_, i) =>
        nextFrame(random, templates, 1000 + i, framedOnly),
      );
      batches.push(
        (async () => {
          const client = await WireClient.connect(broker.host, broker.port);
          for (const f of frames) {
            if (client.isClosed) break;
            client.writeRaw(f);
          }
          const closedInTime = await Promise.race([
            client.closed.then(() => true),
            new Promise<boolean>((resolve) =>
              setTimeout(() => resolve(false), CONNECTION_DEADLINE_MS),
            ),
          ]);
          if (closedInTime) closedByBroker++;
          await client.close();
        })(),
      );
      // A few connections at a time, like a busy set of misbehaving clients.
      if (batches.length === 10) await Promise.all(batches.splice(0));
    }
    await Promise.all(batches);

    expect(closedByBroker).toBeGreaterThan(CONNECTIONS / 4);
    expect(logLines.some((l) => l.includes("bad request size"))).toBe(true);
    expect(logLines.some((l) => l.includes("malformed request"))).toBe(true);
    expect(logLines.filter((l) => l.includes("internal error"))).toEqual([]);

    // The broker is still whole: a real client produces, lists and reads back.
    const kafka = new Kafka({
      clientId: "after-fuzz",
      brokers: [broker.bootstrap],
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    const consumer = kafka.consumer({ groupId: "after-fuzz", maxWaitTimeInMs: 200 });
    try {
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: "after-fuzz", numPartitions: 2 }] });
      expect(await admin.listTopics()).toContain("after-fuzz");
      await producer.connect();
      const values = Array.from({ length: 20 }, (_, i) => `v${i}`);
      await producer.send({
        topic: "after-fuzz",
        acks: -1,
        messages: values.map((value, i) => ({ value, partition: i % 2 })),
      });
      const offsets = await admin.fetchTopicOffsets("after-fuzz");
      expect(offsets.map((o) => o.offset).sort()).toEqual(["10", "10"]);
      await consumer.connect();
      await consumer.subscribe({ topic: "after-fuzz", fromBeginning: true });
      const received: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`got ${received.length} of 20`)), 20_000);
        consumer
          .run({
            eachMessage: async ({ message }) => {
              received.push(message.value?.toString() ?? "");
              if (received.length === values.length) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
      expect(received.sort()).toEqual([...values].sort());
    } finally {
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    }
  });
});
