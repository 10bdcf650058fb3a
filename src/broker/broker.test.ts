/**
 * The broker at the wire level, over real loopback sockets: behaviour real clients cannot
 * be made to exercise (corrupt batches, unknown APIs, pipelining, fault hooks). The
 * client-facing scenarios are in test/broker/.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../kafka/protocol/errors.ts";
import { batchBaseOffset, encodeRecordBatch } from "../kafka/protocol/record-batch.ts";
import { type Reader, Writer } from "../kafka/protocol/wire.ts";
import { type Broker, startBroker } from "./broker.ts";
import { WireClient } from "./wire-client.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

interface ProducePartitionAnswer {
  index: number;
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
}

function produceBody(topic: string, partition: number, records: Uint8Array, acks = -1) {
  return (w: Writer) => {
    w.nullableString(null).int16(acks).int32(5000);
    w.int32(1).string(topic);
    w.int32(1).int32(partition).bytes(records);
  };
}

function readProduceV7(r: Reader): ProducePartitionAnswer[] {
  const out: ProducePartitionAnswer[] = [];
  r.array((t) => {
    t.string();
    t.array((p) => {
      const index = p.int32();
      const errorCode = p.int16();
      const baseOffset = p.int64n();
      p.int64();
      out.push({ index, errorCode, baseOffset, logStartOffset: p.int64n() });
    });
  });
  r.int32();
  return out;
}

interface FetchPartitionAnswer {
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  batches: Uint8Array[];
}

interface FetchArgs {
  topic: string;
  partition?: number;
  offset: number;
  maxWaitMs?: number;
  minBytes?: number;
  maxBytes?: number;
  partitionMaxBytes?: number;
}

function fetchBody(a: FetchArgs) {
  return (w: Writer) => {
    w.int32(-1)
      .int32(a.maxWaitMs ?? 0)
      .int32(a.minBytes ?? 1)
      .int32(a.maxBytes ?? 1 << 20);
    w.int8(0).int32(0).int32(-1);
    w.int32(1).string(a.topic);
    w.int32(1)
      .int32(a.partition ?? 0)
      .int32(-1)
      .int64(a.offset)
      .int64(-1);
    w.int32(a.partitionMaxBytes ?? 1 << 20);
    w.int32(0).string("");
  };
}

function readFetchV11(r: Reader): FetchPartitionAnswer {
  r.int32(); // throttle
  expect(r.int16()).toBe(0);
  r.int32(); // session
  let answer: FetchPartitionAnswer | undefined;
  r.array((t) => {
    t.string();
    t.array((p) => {
      p.int32();
      const errorCode = p.int16();
      const highWatermark = p.int64n();
      p.int64();
      const logStartOffset = p.int64n();
      p.array((a) => [a.int64(), a.int64()]);
      p.int32();
      const records = p.nullableBytes() ?? new Uint8Array(0);
      const batches: Uint8Array[] = [];
      const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
      for (let at = 0; at + 12 <= records.length; ) {
        const size = 12 + view.getInt32(at + 8);
        batches.push(records.subarray(at, at + size));
        at += size;
      }
      answer = { errorCode, highWatermark, logStartOffset, batches };
    });
  });
  if (answer === undefined) throw new Error("no partition in fetch response");
  return answer;
}

function listOffsetsBody(topic: string, timestamp: number) {
  return (w: Writer) => {
    w.int32(-1).int8(0).int32(1).string(topic).int32(1).int32(0).int32(-1).int64(timestamp);
  };
}

function readListOffsetsV5(r: Reader): { errorCode: number; timestamp: number; offset: number } {
  r.int32();
  let out = { errorCode: -1, timestamp: -1, offset: -1 };
  r.array((t) => {
    t.string();
    t.array((p) => {
      p.int32();
      out = { errorCode: p.int16(), timestamp: p.int64n(), offset: p.int64n() };
      p.int32();
    });
  });
  return out;
}

function readApiVersions(r: Reader, version: number) {
  const errorCode = r.int16();
  const item = (a: Reader) => {
    const entry = { apiKey: a.int16(), min: a.int16(), max: a.int16() };
    if (version >= 3) a.taggedFields();
    return entry;
  };
  const apis = version >= 3 ? r.compactArray(item) : r.array(item);
  return { errorCode, apis };
}

const metadataBody = (topics: string[]) => (w: Writer) => {
  w.array(topics, (w, t) => w.string(t)).bool(true);
};

let broker: Broker;
const clients: WireClient[] = [];

async function client(): Promise<WireClient> {
  const c = await WireClient.connect(broker.host, broker.port);
  clients.push(c);
  return c;
}

async function setUp(options: Parameters<typeof startBroker>[0] = {}): Promise<void> {
  broker = await startBroker({ ...options });
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await broker?.close();
});

describe("ApiVersions", () => {
  it("lists the served APIs in v0 through v3", async () => {
    await setUp();
    const c = await client();
    for (const version of [0, 1, 2, 3]) {
      const r = await c.request(
        ApiKey.ApiVersions,
        version,
        (w) => {
          if (version >= 3) w.compactString("test").compactString("1").taggedFields();
        },
        { flexibleRequest: version >= 3 },
      );
      const { errorCode, apis } = readApiVersions(r, version);
      expect(errorCode).toBe(0);
      const byKey = new Map(apis.map((a) => [a.apiKey, a]));
      expect(byKey.get(ApiKey.Produce)).toMatchObject({ min: 3, max: 8 });
      expect(byKey.get(ApiKey.Fetch)).toMatchObject({ min: 4, max: 11 });
      expect(byKey.get(ApiKey.ApiVersions)).toMatchObject({ min: 0, max: 3 });
      expect(byKey.has(ApiKey.JoinGroup)).toBe(true);
    }
  });

  it("answers a version it lacks in the v0 format with UNSUPPORTED_VERSION and the list", async () => {
    await setUp();
    const c = await client();
    const r = await c.request(ApiKey.ApiVersions, 9, (w) => {
      w.raw(text("whatever a future version carries"));
    });
    const { errorCode, apis } = readApiVersions(r, 0);
    expect(errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
    expect(apis.find((a) => a.apiKey === ApiKey.Metadata)).toMatchObject({ min: 0, max: 8 });
    expect(r.remaining).toBe(0);
  });
});

describe("unsupported requests", () => {
  it("answers an unknown API key or version with UNSUPPORTED_VERSION and keeps serving", async () => {
    const lines: string[] = [];
    await setUp({ log: (line) => lines.push(line) });
    const c = await client();
    const unknown = await c.request(77, 0, () => {});
    expect(unknown.int16()).toBe(ErrorCode.UNSUPPORTED_VERSION);
    const tooNew = await c.request(ApiKey.Produce, 99, () => {});
    expect(tooNew.int16()).toBe(ErrorCode.UNSUPPORTED_VERSION);
    const r = await c.request(ApiKey.ApiVersions, 0, () => {});
    expect(readApiVersions(r, 0).errorCode).toBe(0);
    expect(lines.some((l) => l.includes("api key 77"))).toBe(true);
  });

  it("reassembles requests that arrive a byte at a time, and several in one write", async () => {
    await setUp();
    const c = await client();
    const request = (correlationId: number): Uint8Array => {
      const w = new Writer();
      const sizeAt = w.reserveInt32();
      w.int16(ApiKey.ApiVersions).int16(0).int32(correlationId).nullableString("slow");
      w.patchInt32(sizeAt, w.length - 4);
      return w.bytesView().slice();
    };
    for (const byte of request(501)) {
      c.writeRaw(new Uint8Array([byte]));
      // Paced writes, so that the bytes arrive in separate reads (not a wait of the test).
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const three = new Uint8Array([...request(502), ...request(503), ...request(504)]);
    c.writeRaw(three);
    await expect.poll(() => c.answered, { timeout: 5000 }).toEqual([501, 502, 503, 504]);
  });

  it("closes only the connection that sent a malformed request", async () => {
    const lines: string[] = [];
    await setUp({ log: (line) => lines.push(line) });
    const good = await client();
    const bad = await client();
    // A Metadata v1 request that claims 5 topics and ends.
    bad.send(ApiKey.Metadata, 1, (w) => w.int32(5));
    await bad.closed;
    const huge = await client();
    huge.writeRaw(new Uint8Array([0x7f, 0xff, 0xff, 0xff]));
    await huge.closed;
    const r = await good.request(ApiKey.ApiVersions, 0, () => {});
    expect(readApiVersions(r, 0).errorCode).toBe(0);
    expect(lines.some((l) => l.includes("malformed request"))).toBe(true);
    expect(lines.some((l) => l.includes("bad request size"))).toBe(true);
  });
});

describe("Produce", () => {
  it("assigns offsets, stores batches as sent and reports the log start", async () => {
    await setUp();
    broker.createTopic("p", 2);
    const c = await client();
    const batch = encodeRecordBatch([{ value: text("a") }, { value: text("b") }]);
    for (const expected of [0, 2, 4]) {
      const r = await c.request(ApiKey.Produce, 7, produceBody("p", 1, batch));
      expect(readProduceV7(r)).toEqual([
        { index: 1, errorCode: 0, baseOffset: expected, logStartOffset: 0 },
      ]);
    }
    const f = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "p", partition: 1, offset: 3 })),
    );
    expect(f.highWatermark).toBe(6);
    expect(f.batches.map(batchBaseOffset)).toEqual([2, 4]);
    // Same bytes as produced, apart from the base offset the broker wrote.
    expect(f.batches[0]?.subarray(8)).toEqual(batch.subarray(8));
  });

  it("refuses a corrupt batch, unknown partitions and bad acks without appending", async () => {
    await setUp();
    broker.createTopic("p", 1);
    const c = await client();
    const corrupt = encodeRecordBatch([{ value: text("a") }]);
    corrupt[corrupt.length - 1] = (corrupt.at(-1) as number) ^ 0xff;
    const answer = async (topic: string, partition: number, records: Uint8Array, acks = -1) =>
      readProduceV7(
        await c.request(ApiKey.Produce, 7, produceBody(topic, partition, records, acks)),
      )[0];
    expect((await answer("p", 0, corrupt))?.errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect((await answer("p", 0, text("garbage")))?.errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
    const good = encodeRecordBatch([{ value: text("a") }]);
    expect((await answer("p", 3, good))?.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect((await answer("nope", 0, good))?.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect((await answer("p", 0, good, 2))?.errorCode).toBe(ErrorCode.INVALID_REQUIRED_ACKS);
    const latest = readListOffsetsV5(
      await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("p", -1)),
    );
    expect(latest.offset).toBe(0);
  });

  it("sends no response for acks=0 and still answers later requests in order", async () => {
    await setUp();
    broker.createTopic("p", 1);
    const c = await client();
    const batch = encodeRecordBatch([{ value: text("fire and forget") }]);
    const silent = c.send(ApiKey.Produce, 7, produceBody("p", 0, batch, 0));
    const r = await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("p", -1));
    expect(readListOffsetsV5(r).offset).toBe(1);
    expect(c.answered).not.toContain(silent);
  });
});

describe("Fetch", () => {
  it("wakes a long poll as soon as a record is appended", async () => {
    await setUp();
    broker.createTopic("f", 1);
    const consumer = await client();
    const producer = await client();
    const started = Date.now();
    const pending = consumer.request(
      ApiKey.Fetch,
      11,
      fetchBody({ topic: "f", offset: 0, maxWaitMs: 5000 }),
    );
    // The long poll is parked at the broker before the record comes.
    await vi.waitFor(() => expect(broker.faults.requests(ApiKey.Fetch)).toBe(1));
    await producer.request(
      ApiKey.Produce,
      7,
      produceBody("f", 0, encodeRecordBatch([{ value: text("x") }])),
    );
    const answer = readFetchV11(await pending);
    expect(answer.batches).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("answers an empty long poll after MaxWaitMs", async () => {
    await setUp();
    broker.createTopic("f", 1);
    const c = await client();
    const started = Date.now();
    const answer = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "f", offset: 0, maxWaitMs: 200 })),
    );
    expect(answer).toMatchObject({ errorCode: 0, highWatermark: 0, batches: [] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("keeps the response order on a connection while a fetch waits", async () => {
    await setUp();
    broker.createTopic("f", 1);
    const c = await client();
    const fetch = c.request(ApiKey.Fetch, 11, fetchBody({ topic: "f", offset: 0, maxWaitMs: 300 }));
    const metadata = c.request(ApiKey.Metadata, 4, metadataBody(["f"]));
    await Promise.all([fetch, metadata]);
    expect(c.answered).toEqual([1, 2]);
  });

  it("reports OFFSET_OUT_OF_RANGE outside [log start, high watermark]", async () => {
    await setUp();
    broker.createTopic("f", 1);
    const c = await client();
    await c.request(
      ApiKey.Produce,
      7,
      produceBody("f", 0, encodeRecordBatch([{ value: text("x") }])),
    );
    const beyond = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "f", offset: 2, maxWaitMs: 5000 })),
    );
    expect(beyond).toMatchObject({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, highWatermark: 1 });
    const before = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "f", offset: -1 })),
    );
    expect(before.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    const unknown = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "zz", offset: 0 })),
    );
    expect(unknown.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it("always returns one whole batch even when it exceeds every limit", async () => {
    await setUp();
    broker.createTopic("f", 1);
    const c = await client();
    const big = encodeRecordBatch([{ value: new Uint8Array(10_000).fill(7) }]);
    await c.request(ApiKey.Produce, 7, produceBody("f", 0, big));
    await c.request(ApiKey.Produce, 7, produceBody("f", 0, big));
    const answer = readFetchV11(
      await c.request(
        ApiKey.Fetch,
        11,
        fetchBody({ topic: "f", offset: 0, maxBytes: 100, partitionMaxBytes: 100 }),
      ),
    );
    expect(answer.batches).toHaveLength(1);
    expect(answer.batches[0]?.length).toBe(big.length);
  });

  it("answers with large and small batches in order, byte for byte", async () => {
    // Batches of 16 KiB and more leave as writes of their own, the rest corked together.
    await setUp();
    broker.createTopic("f", 1);
    const c = await client();
    const sizes = [100, 20_000, 50, 16_384, 40_000, 10];
    const sent = sizes.map((n, i) =>
      encodeRecordBatch([{ value: new Uint8Array(n).map((_, j) => (i * 31 + j) & 0xff) }]),
    );
    for (const batch of sent) await c.request(ApiKey.Produce, 7, produceBody("f", 0, batch));
    const answer = readFetchV11(
      await c.request(ApiKey.Fetch, 11, fetchBody({ topic: "f", offset: 0 })),
    );
    expect(answer.batches).toHaveLength(sent.length);
    answer.batches.forEach((batch, i) => {
      expect(batchBaseOffset(batch)).toBe(i);
      expect(batch.subarray(8)).toEqual((sent[i] as Uint8Array).subarray(8));
    });
  });

  it("sends a held answer's batches intact after retention freed their memory for reuse", async () => {
    // Size retention keeps one batch per partition. The Fetch answer for "a" is held back
    // (latency injection) while its batch is dropped and a new partition takes a chunk of
    // the size that batch's lived in: were the held answer not pinning it, the new
    // partition's bytes would overwrite what the answer then sends.
    await setUp({ retentionBytes: 1 });
    broker.createTopic("a", 1);
    broker.createTopic("b", 1);
    const reader = await client();
    const writer = await client();
    const batchOf = (fill: number) =>
      encodeRecordBatch([{ value: new Uint8Array(10_000).fill(fill) }]);
    const first = batchOf(0x11);
    await writer.request(ApiKey.Produce, 7, produceBody("a", 0, first));
    broker.faults.setLatency(300);
    const held = reader.request(ApiKey.Fetch, 11, fetchBody({ topic: "a", offset: 0 }));
    await vi.waitFor(() => expect(broker.faults.requests(ApiKey.Fetch)).toBe(1));
    const produced = [writer.request(ApiKey.Produce, 7, produceBody("a", 0, batchOf(0x22)))];
    await vi.waitFor(() => expect(broker.faults.requests(ApiKey.Produce)).toBe(2));
    await new Promise((resolve) => setTimeout(resolve, 20)); // a macrotask: freed chunks settle
    const other = batchOf(0xee);
    produced.push(writer.request(ApiKey.Produce, 7, produceBody("b", 0, other)));
    const answer = readFetchV11(await held);
    await Promise.all(produced);
    expect(answer.batches).toHaveLength(1);
    expect(batchBaseOffset(answer.batches[0] as Uint8Array)).toBe(0);
    expect((answer.batches[0] as Uint8Array).subarray(8)).toEqual(first.subarray(8));
    broker.faults.setLatency(0);
    const again = readFetchV11(
      await reader.request(ApiKey.Fetch, 11, fetchBody({ topic: "b", offset: 0 })),
    );
    expect((again.batches[0] as Uint8Array).subarray(8)).toEqual(other.subarray(8));
  });
});

describe("ListOffsets and retention", () => {
  it("finds earliest, latest and by-timestamp offsets, and follows size retention", async () => {
    await setUp({ retentionBytes: 1 });
    broker.createTopic("l", 1);
    const c = await client();
    for (const ts of [1000, 2000, 3000]) {
      const batch = encodeRecordBatch([
        { value: text("v"), timestamp: ts },
        { value: text("w"), timestamp: ts },
      ]);
      await c.request(ApiKey.Produce, 7, produceBody("l", 0, batch));
    }
    const list = async (ts: number) =>
      readListOffsetsV5(await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("l", ts)));
    // Retention keeps only the newest batch: offsets 4-5.
    expect(await list(-2)).toMatchObject({ errorCode: 0, offset: 4 });
    expect(await list(-1)).toMatchObject({ errorCode: 0, offset: 6 });
    expect(await list(2500)).toMatchObject({ offset: 4, timestamp: 3000 });
    expect(await list(3001)).toMatchObject({ errorCode: 0, offset: -1 });
  });

  it("drops batches by age on its own timer", async () => {
    await setUp({ retentionMs: 100 });
    broker.createTopic("l", 1);
    const c = await client();
    await c.request(
      ApiKey.Produce,
      7,
      produceBody("l", 0, encodeRecordBatch([{ value: text("v") }])),
    );
    const earliest = async () =>
      readListOffsetsV5(await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("l", -2))).offset;
    await expect.poll(earliest, { timeout: 5000 }).toBe(1);
  });

  it("refuses a retention limit that is not a positive integer at start", async () => {
    await expect(startBroker({ retentionMs: 0 })).rejects.toThrow(
      /retentionMs must be a positive integer of milliseconds, got 0/,
    );
    await expect(startBroker({ retentionBytes: 1.5 })).rejects.toThrow(
      /retentionBytes must be a positive integer of bytes, got 1.5/,
    );
  });

  it("takes a new age limit while running, and none again", async () => {
    await setUp();
    broker.createTopic("r", 1);
    const c = await client();
    const produce = () =>
      c.request(ApiKey.Produce, 7, produceBody("r", 0, encodeRecordBatch([{ value: text("v") }])));
    const earliest = async () =>
      readListOffsetsV5(await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("r", -2))).offset;
    await produce();
    expect(() => broker.setRetentionMs(0)).toThrow(/positive integer/);
    broker.setRetentionMs(50);
    await expect.poll(earliest, { timeout: 5000 }).toBe(1);
    // No limit: a batch older than the old limit stays.
    broker.setRetentionMs(undefined);
    await produce();
    await new Promise((r) => setTimeout(r, 300));
    expect(await earliest()).toBe(1);
  });
});

describe("batch size limit", () => {
  it("refuses a batch over maxMessageBytes with MESSAGE_TOO_LARGE, as Kafka's message.max.bytes", async () => {
    await setUp({ maxMessageBytes: 1_000 });
    broker.createTopic("m", 1);
    const c = await client();
    const produce = async (bytes: number) =>
      readProduceV7(
        await c.request(
          ApiKey.Produce,
          7,
          produceBody("m", 0, encodeRecordBatch([{ value: new Uint8Array(bytes) }])),
        ),
      )[0]?.errorCode;
    // Two small records fit; one whose batch passes 1,000 bytes does not, and is not stored.
    expect(await produce(100)).toBe(ErrorCode.NONE);
    expect(await produce(2_000)).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(await produce(100)).toBe(ErrorCode.NONE);
    const latest = readListOffsetsV5(
      await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("m", -1)),
    );
    expect(latest.offset).toBe(2);
  });
});

describe("fault hooks", () => {
  it("injects errors into the next requests of one API only", async () => {
    await setUp();
    broker.createTopic("p", 1);
    const c = await client();
    broker.faults.failNext(ApiKey.Produce, 2, ErrorCode.NOT_LEADER_OR_FOLLOWER);
    const batch = encodeRecordBatch([{ value: text("a") }]);
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      codes.push(
        readProduceV7(await c.request(ApiKey.Produce, 7, produceBody("p", 0, batch)))[0]
          ?.errorCode ?? -1,
      );
    }
    expect(codes).toEqual([ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_LEADER_OR_FOLLOWER, 0]);
    const latest = readListOffsetsV5(
      await c.request(ApiKey.ListOffsets, 5, listOffsetsBody("p", -1)),
    );
    expect(latest.offset).toBe(1);
  });

  it("delays responses, pauses and resumes, and drops connections", async () => {
    await setUp();
    const c = await client();
    broker.faults.setLatency(200);
    let started = Date.now();
    await c.request(ApiKey.ApiVersions, 0, () => {});
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    broker.faults.setLatency(0);

    broker.faults.pause();
    let answered = false;
    const pending = c
      .request(ApiKey.ApiVersions, 0, () => {})
      .then(() => {
        answered = true;
      });
    await new Promise((resolve) => setTimeout(resolve, 200)); // nothing happens for 200 ms: paused
    expect(answered).toBe(false);
    started = Date.now();
    broker.faults.resume();
    await pending;
    expect(Date.now() - started).toBeLessThan(1000);

    broker.faults.dropConnections();
    await c.closed;
    const again = await client();
    const r = await again.request(ApiKey.ApiVersions, 0, () => {});
    expect(readApiVersions(r, 0).errorCode).toBe(0);
  });
});
