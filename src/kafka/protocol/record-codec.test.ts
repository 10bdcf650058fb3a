/**
 * Record batches in both directions, judged by independent clients: what encodeBatch writes
 * (uncompressed and with every codec) is read back by kcat (librdkafka) exactly, and what kcat
 * writes with every codec is decoded over a real broker. Batches that cannot be decoded stop
 * decoding where they are, with the reason.
 */

import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../broker/broker.ts";
import { KafkaCluster } from "../client/kafka-cluster.ts";
import { startPartitionReader } from "../client/partition-reader.ts";
import {
  headerPairs,
  kcat,
  kcatRead,
  storedCodecs,
  testSettings,
  waitFor,
} from "../client/wire-test-kit.ts";
import { ApiKey } from "./api-keys.ts";
import { type CompressionCodec, zstdCompressionAvailable } from "./compression.ts";
import { crc32c } from "./crc32c.ts";
import {
  batchBytes,
  type DecodedBatches,
  decodeBatches,
  encodeBatch,
  type FetchedRecord,
  type OutgoingRecord,
  utf8,
  writeBatch,
} from "./record-codec.ts";
import { Writer } from "./wire.ts";

const text = (s: string) => new TextEncoder().encode(s);

let broker: Broker;
let cluster: KafkaCluster;

beforeAll(async () => {
  // librdkafka 2.0 compresses only for brokers that list Produce v2 (it reads that as
  // "message format 1"); ours serves v3+, so it advertises the old versions too.
  broker = await startBroker({ apiVersionCaps: { [ApiKey.Produce]: [0, 8] } });
  cluster = new KafkaCluster(testSettings(broker.bootstrap));
});

afterAll(async () => {
  cluster?.close();
  await broker?.close();
});

/** Reads `topic`-0 from `from` until `count` records came; returns them and the problems. */
async function readFrom(topic: string, from: number, count: number) {
  const records: FetchedRecord[] = [];
  const problems: string[] = [];
  const reader = await startPartitionReader({
    cluster,
    topics: [topic],
    start: "earliest",
    positions: new Map([[`${topic}\u00000`, from]]),
    maxWaitMs: 200,
    partitionMaxBytes: 1 << 20,
    maxBytes: 4 << 20,
    onRecords: (_t, _p, list) => {
      records.push(...list);
    },
    onProblem: (message, error) => problems.push(`${message}: ${(error as Error).message}`),
  });
  try {
    await waitFor(() => records.length >= count, `${count} records of ${topic}`);
    // Nothing happens for 300 ms: anything past `count` would be a duplicate or misplaced.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { records, problems, position: reader.positions().get(`${topic}\0${0}`) };
  } finally {
    reader.stop();
  }
}

/** Writes one pre-built batch to partition 0 of `topic` with a raw Produce; returns its base offset. */
async function produceRawBatch(topic: string, batch: Uint8Array): Promise<number> {
  await cluster.partitions(topic);
  const connection = await cluster.connection(cluster.leaderOf(topic, 0));
  const r = await connection.request(ApiKey.Produce, 3, (w) => {
    w.nullableString(null).int16(-1).int32(5_000);
    w.array([topic], (w, t) => {
      w.string(t).array([0], (w, p) => w.int32(p).bytes(batch));
    });
  });
  r.int32(); // topics
  r.string();
  r.int32(); // partitions
  r.int32();
  expect(r.int16()).toBe(0);
  return Number(r.int64());
}

/** `batch` (uncompressed, from encodeBatch) with its records gzip-compressed. */
function gzipBatch(batch: Uint8Array): Uint8Array {
  const records = gzipSync(batch.subarray(61));
  const out = new Uint8Array(61 + records.length);
  out.set(batch.subarray(0, 61));
  out.set(records, 61);
  const view = new DataView(out.buffer);
  view.setInt32(8, out.length - 12);
  view.setInt16(21, 1); // gzip
  view.setUint32(17, crc32c(out, 21, out.length));
  return out;
}

/** A commit marker batch (control, transactional) at `offset`. */
function controlBatch(offset: number): Uint8Array {
  const batch = encodeBatch([{ key: "\0\0\0\0", value: new Uint8Array(6), headers: [] }], 1);
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  view.setBigInt64(0, BigInt(offset));
  view.setInt16(21, 0x30); // control + transactional
  view.setBigInt64(43, 77n); // producer id
  view.setUint32(17, crc32c(batch, 21, batch.length));
  return batch;
}

function atOffset(batch: Uint8Array, offset: number): Uint8Array {
  const copy = batch.slice();
  new DataView(copy.buffer).setBigInt64(0, BigInt(offset));
  return copy;
}

const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

describe("encodeBatch, read by kcat", () => {
  it("keeps keys, values and headers exactly: order, repeats, UTF-8, empty vs null", async () => {
    const topic = "codec-encode";
    broker.createTopic(topic, 1);
    const long = "ä".repeat(70);
    const records: OutgoingRecord[] = [
      {
        key: "k1",
        value: text("v1"),
        headers: [
          ["a", "1"],
          ["b", "2"],
          ["a", "3"],
        ],
      },
      {
        key: "ключ",
        value: text("значение ✓"),
        headers: [
          ["名前", "値"],
          ["emoji", "🎉"],
          ["long", long],
          ["x".repeat(80), "y".repeat(90)],
        ],
      },
      { key: "empty", value: new Uint8Array(0), headers: [["h", ""]] },
      { key: "tombstone", value: null, headers: [["zilla:status", "0"]] },
    ];
    await cluster.produce(-1, 5_000, new Map([[topic, records]]));
    // A null key goes through the same encoder (on its own: it may pick any partition).
    await cluster.produce(
      1,
      5_000,
      new Map([[topic, [{ key: null, value: text("nk"), headers: [] }]]]),
    );

    const read = await kcatRead(broker.bootstrap, topic);
    expect(read.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(read.map((r) => r.key)).toEqual(["k1", "ключ", "empty", "tombstone", null]);
    expect(read.map((r) => r.payload)).toEqual(["v1", "значение ✓", "", null, "nk"]);
    expect(headerPairs(read[0]?.headers)).toEqual([
      ["a", "1"],
      ["b", "2"],
      ["a", "3"],
    ]);
    expect(headerPairs(read[1]?.headers)).toEqual([
      ["名前", "値"],
      ["emoji", "🎉"],
      ["long", long],
      ["x".repeat(80), "y".repeat(90)],
    ]);
    expect(headerPairs(read[2]?.headers)).toEqual([["h", ""]]);
    expect(headerPairs(read[3]?.headers)).toEqual([["zilla:status", "0"]]);
    expect(read[4]?.headers).toBeUndefined();

    // And the decoder reads back what the encoder wrote.
    const back = await readFrom(topic, 0, 5);
    expect(back.records.map((r) => (r.key === null ? null : utf8(r.key)))).toEqual([
      "k1",
      "ключ",
      "empty",
      "tombstone",
      null,
    ]);
    expect(back.records.map((r) => (r.value === null ? null : utf8(r.value)))).toEqual([
      "v1",
      "значение ✓",
      "",
      null,
      "nk",
    ]);
    expect(back.records[1]?.headers).toEqual(records[1]?.headers);
    expect(back.records[0]?.headers).toEqual(records[0]?.headers);
    expect(back.records.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(back.problems).toEqual([]);
  });
});

describe("batchBytes", () => {
  const ascii: OutgoingRecord[][] = [
    [{ key: null, value: null, headers: [] }],
    [{ key: "k", value: new Uint8Array(300_000), headers: [["h", "v"]] }],
    [{ key: "x".repeat(200), value: new Uint8Array(20_000), headers: [["a", "b".repeat(70)]] }],
    Array.from({ length: 300 }, (_, i) => ({
      key: `key-${i}`,
      value: new Uint8Array(i * 7),
      headers: [["zilla:correlation-id", `${i}`] as const],
    })),
  ];
  const nonAscii: OutgoingRecord[] = [
    { key: "ключ", value: text("значение"), headers: [["名前", "🎉".repeat(40)]] },
    { key: "x", value: new Uint8Array(20_000), headers: [["a", "é".repeat(3000)]] },
  ];

  it("is never below what an ASCII batch takes (what Produce sizes its buffer by), nor far above", () => {
    for (const records of ascii) {
      const written = encodeBatch(records, Date.now()).length;
      expect(batchBytes(records)).toBeGreaterThanOrEqual(written);
      // within a few bytes per record of the truth, so a burst allocates what it sends
      if (records.length === 300) expect(batchBytes(records)).toBeLessThan(written * 1.5);
    }
  });

  it("undercounts other UTF-8, and a buffer of that size grows to the same bytes", () => {
    const timestamp = Date.now();
    const expected = encodeBatch(nonAscii, timestamp);
    expect(batchBytes(nonAscii)).toBeLessThan(expected.length);
    const w = new Writer(batchBytes(nonAscii));
    writeBatch(w, nonAscii, timestamp);
    expect(w.bytesView()).toEqual(expected);
    const back: FetchedRecord[] = [];
    decodeBatches(expected, 0, (r) => back.push(r));
    expect(back.map((r) => r.headers)).toEqual(nonAscii.map((r) => r.headers));
    expect(back.map((r) => (r.key ? utf8(r.key) : null))).toEqual(["ключ", "x"]);
  });

  it("writes large values by reference to the same bytes and CRC as copied, batch after batch", () => {
    const timestamp = Date.now();
    const large = (n: number, seed: number) =>
      Uint8Array.from({ length: n }, (_, i) => (i * seed) & 0xff);
    const first: OutgoingRecord[] = [
      { key: "a", value: large(10_240, 7), headers: [["h", "1"]] },
      { key: "b", value: text("small"), headers: [] },
      { key: null, value: large(511, 3), headers: [] }, // below MIN_REF_BYTES: copied
      { key: "c", value: large(512, 5), headers: [["h", "2"]] },
    ];
    const fourK = large(4096, 11);
    const second: OutgoingRecord[] = [{ key: "d", value: fourK, headers: [] }];
    const copied = new Writer(64);
    writeBatch(copied, first, timestamp);
    writeBatch(copied, second, timestamp);
    const referenced = new Writer(batchBytes(first, true) + batchBytes(second, true));
    writeBatch(referenced, first, timestamp, "none", true);
    // the same value given in pieces (a changelog entry): the large piece referenced too
    const pieces = [fourK.slice(0, 4), fourK.subarray(4), text("")];
    writeBatch(referenced, [{ key: "d", value: pieces, headers: [] }], timestamp, "none", true);
    // only the 10,240, 512 and 4,092-byte values stay out of the writer's own buffer
    expect(referenced.offset).toBe(copied.offset - 10_240 - 512 - 4092);
    expect(referenced.segments()).toContain(first[0]?.value);
    expect(referenced.bytesView()).toEqual(copied.bytesView());
    const back: FetchedRecord[] = [];
    const decoded = decodeBatches(referenced.bytesView(), 0, (r) => back.push(r));
    expect(decoded.undecodable).toBeUndefined();
    expect(back.map((r) => r.value)).toEqual([...first, ...second].map((r) => r.value));
  });
});

describe("decoding what kcat wrote", () => {
  it("decodes batches of every codec (none, lz4, gzip, snappy, zstd), in order, exactly", async () => {
    const topic = "codec-kcat";
    broker.createTopic(topic, 1);
    // Compressible values: librdkafka sends a batch uncompressed when compression does not pay.
    const lines = (tag: string) =>
      Array.from({ length: 3 }, (_, i) => `${tag}-${i}:${tag}-${i}-${"z".repeat(300)}`).join("\n");
    const codecs = ["none", "lz4", "gzip", "snappy", "zstd", "none"];
    for (const [i, codec] of codecs.entries()) {
      await kcat(
        [
          "-P",
          "-b",
          broker.bootstrap,
          "-t",
          topic,
          "-p",
          "0",
          "-K:",
          "-X",
          `compression.codec=${codec}`,
          "-H",
          `codec=${codec}`,
        ],
        `${lines(`${codec}${i}`)}\n`,
      );
    }
    // The broker keeps batches as sent, each run's in its codec (librdkafka may split a run
    // into several batches under load): every codec is there, first met in the runs' order.
    const stored = await storedCodecs(broker.bootstrap, topic);
    expect(stored.filter((c, i) => stored.indexOf(c) === i)).toEqual([0, 3, 1, 2, 4]);
    const all = await kcatRead(broker.bootstrap, topic);
    expect(all).toHaveLength(18);

    const { records, problems, position } = await readFrom(topic, 0, all.length);
    expect(records.map((r) => r.offset)).toEqual(all.map((r) => r.offset));
    expect(records.map((r) => utf8(r.key as Uint8Array))).toEqual(all.map((r) => r.key));
    expect(records.map((r) => utf8(r.value as Uint8Array))).toEqual(all.map((r) => r.payload));
    expect(records.map((r) => r.headers)).toEqual(all.map((r) => headerPairs(r.headers)));
    expect(problems).toEqual([]);
    expect(position).toBe(18);
  });

  it("reads back batches the gateway compressed with each codec, and so does kcat", async () => {
    const codecs: CompressionCodec[] = ["gzip", "snappy", "lz4"];
    // zstd is written where node:zlib has it (Bun, Deno, Node 22.15+).
    if (zstdCompressionAvailable()) codecs.push("zstd");
    for (const codec of codecs) {
      const topic = `codec-write-${codec}`;
      broker.createTopic(topic, 1);
      const records: OutgoingRecord[] = Array.from({ length: 40 }, (_, i) => ({
        key: `k${i}`,
        value: text(`${codec} value ${i} ${"ab".repeat(i * 10)}`),
        headers: [
          ["zilla:correlation-id", `id-${i}`],
          ["ü", "✓"],
        ],
      }));
      const producer = new KafkaCluster({
        ...testSettings(broker.bootstrap),
        compression: codec,
      });
      try {
        await producer.produce(-1, 5_000, new Map([[topic, records]]));
      } finally {
        producer.close();
      }
      expect(await storedCodecs(broker.bootstrap, topic)).toEqual([
        [0, "gzip", "snappy", "lz4", "zstd"].indexOf(codec),
      ]);
      const read = await kcatRead(broker.bootstrap, topic);
      expect(read.map((r) => r.key)).toEqual(records.map((r) => r.key));
      expect(read.map((r) => r.payload)).toEqual(records.map((r) => utf8(r.value as Uint8Array)));
      for (const r of read) expect(headerPairs(r.headers)).toHaveLength(2);
      const back = await readFrom(topic, 0, records.length);
      expect(back.records.map((r) => utf8(r.value as Uint8Array))).toEqual(
        records.map((r) => utf8(r.value as Uint8Array)),
      );
      expect(back.problems).toEqual([]);
    }
  });

  it("starts inside a batch: earlier records of that batch are skipped (plain and gzip)", async () => {
    const topic = "codec-middle";
    broker.createTopic(topic, 1);
    const five = Array.from({ length: 5 }, (_, i) => ({
      key: "same",
      value: text(`m${i}`),
      headers: [["i", String(i)]] as [string, string][],
    }));
    await cluster.produce(-1, 5_000, new Map([[topic, five]]));
    const gzipBase = await produceRawBatch(topic, gzipBatch(encodeBatch(five, Date.now())));
    expect(gzipBase).toBe(5);

    const plain = await readFrom(topic, 2, 8);
    expect(plain.records.map((r) => r.offset)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(plain.records.map((r) => utf8(r.value as Uint8Array))).toEqual([
      "m2",
      "m3",
      "m4",
      "m0",
      "m1",
      "m2",
      "m3",
      "m4",
    ]);
    const gzipped = await readFrom(topic, 8, 2);
    expect(gzipped.records.map((r) => r.offset)).toEqual([8, 9]);
    expect(gzipped.records.map((r) => r.headers)).toEqual([[["i", "3"]], [["i", "4"]]]);
    expect(gzipped.problems).toEqual([]);
  });
});

describe("decodeBatches", () => {
  const batch = (values: string[]) =>
    encodeBatch(
      values.map((v) => ({ key: null, value: text(v), headers: [] })),
      1_000,
    );
  const decode = (bytes: Uint8Array, from: number) => {
    const out: FetchedRecord[] = [];
    const result: DecodedBatches = decodeBatches(bytes, from, (r) => out.push(r));
    return {
      next: result.next,
      values: out.map((r) => utf8(r.value as Uint8Array)),
      offsets: out.map((r) => r.offset),
      undecodable: result.undecodable,
      resumeAt: result.resumeAt,
    };
  };
  /** `bytes` with its attributes set to `attributes` and its CRC made right again. */
  const withAttributes = (bytes: Uint8Array, attributes: number) => {
    const copy = bytes.slice();
    const view = new DataView(copy.buffer);
    view.setInt16(21, attributes);
    view.setUint32(17, crc32c(copy, 21, copy.length));
    return copy;
  };

  it("reads back header text of every kind: ASCII of any length, and text that turns non-ASCII late", () => {
    const headers: [string, string][] = [
      ["zilla:correlation-id", `${"a".repeat(36)}-${"0".repeat(32)}`],
      ["late", `${"x".repeat(300)}é`],
      ["long", "y".repeat(2000)],
      ["long-utf8", `${"z".repeat(1500)}✓`],
      ["", ""],
      ["emoji-name-🎉", "v"],
    ];
    const out: FetchedRecord[] = [];
    decodeBatches(encodeBatch([{ key: "k", value: null, headers }], 1), 0, (r) => out.push(r));
    expect(out[0]?.headers).toEqual(headers);
  });

  it("reads repeated-value headers right, whatever their values, record after record", () => {
    const repeatedValues = new Set(["svc", "method", "empty"]);
    const records = [
      ["a.Svc", "Call"],
      ["a.Svc", "Calm"], // one byte apart from the value before
      ["b.Svc", "Call"],
      ["caf\u00e9.Svc", "Call"], // not ASCII: decoded as UTF-8
      ["s".repeat(200), "Call"], // longer than is kept
      ["a.Svc", "Call"],
    ].map(([svc, method], i) => ({
      key: `k${i}`,
      value: null,
      headers: [
        ["svc", svc as string],
        ["method", method as string],
        ["empty", ""],
        ["other", `v${i}`],
      ] as [string, string][],
    }));
    for (let round = 0; round < 2; round++) {
      const out: FetchedRecord[] = [];
      decodeBatches(encodeBatch(records, 1), 0, (r) => out.push(r), { repeatedValues });
      expect(out.map((r) => r.headers)).toEqual(records.map((r) => r.headers));
    }
  });

  it("skips control batches", () => {
    const bytes = concat(
      atOffset(batch(["a", "b"]), 0),
      controlBatch(2),
      atOffset(batch(["c"]), 3),
    );
    const { next, values, offsets, undecodable } = decode(bytes, 0);
    expect(values).toEqual(["a", "b", "c"]);
    expect(offsets).toEqual([0, 1, 3]);
    expect(next).toBe(4);
    expect(undecodable).toBeUndefined();
    // A fetch that holds only a control batch still moves past it.
    expect(decode(controlBatch(7), 7).next).toBe(8);
  });

  it("stops before a partial trailing batch and resumes at it", () => {
    const first = atOffset(batch(["a", "b"]), 10);
    const second = atOffset(batch(["c", "d"]), 12);
    for (const cut of [1, 20, 61, second.length - 1]) {
      const { next, values } = decode(concat(first, second.subarray(0, cut)), 10);
      expect(values).toEqual(["a", "b"]);
      expect(next).toBe(12);
    }
    // Nothing complete: the position stays.
    expect(decode(second.subarray(0, 40), 12)).toMatchObject({ next: 12, values: [] });
  });

  it("records at or past `from` only, including inside a gzip batch", () => {
    const bytes = atOffset(gzipBatch(batch(["a", "b", "c", "d"])), 20);
    expect(decode(bytes, 22)).toMatchObject({ next: 24, values: ["c", "d"], offsets: [22, 23] });
    // A batch wholly before `from` (the broker returns the batch holding the offset) is skipped.
    expect(decode(concat(atOffset(batch(["x"]), 19), bytes), 21)).toMatchObject({
      next: 24,
      values: ["b", "c", "d"],
    });
  });

  it("stops at a batch whose CRC does not match: nothing of it, the records before it", () => {
    const bad = atOffset(batch(["b1", "b2", "b3"]), 2);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0xff; // a flipped byte in the last value
    const bytes = concat(atOffset(batch(["a0", "a1"]), 0), bad, atOffset(batch(["c"]), 5));
    const result = decode(bytes, 0);
    expect(result.values).toEqual(["a0", "a1"]);
    expect(result.next).toBe(2);
    expect(result.undecodable).toMatchObject({ baseOffset: 2, lastOffset: 4 });
    expect(result.undecodable?.error.message).toMatch(/offset 2 is corrupt: CRC-32C/);
    // Reading on past it (the skip policy) finds the next batch where `resumeAt` says.
    const rest = decode(bytes.subarray(result.resumeAt), 5);
    expect(rest).toMatchObject({ values: ["c"], next: 6, undecodable: undefined });
  });

  it("stops at an unknown codec id (5, 6, 7), naming it", () => {
    for (const id of [5, 6, 7]) {
      const bytes = concat(
        withAttributes(atOffset(batch(["x", "y"]), 0), id),
        atOffset(batch(["z"]), 2),
      );
      const result = decode(bytes, 0);
      expect(result.values).toEqual([]);
      expect(result.next).toBe(0);
      expect(result.undecodable?.error.message).toMatch(
        new RegExp(`offset 0 cannot be decompressed: unknown compression codec id ${id}`),
      );
      expect(result.undecodable?.lastOffset).toBe(1);
    }
  });

  it("stops at broken records (a record running past its batch), handing on none of that batch", () => {
    const broken = atOffset(batch(["one", "two"]), 0);
    const view = new DataView(broken.buffer);
    // Claim three records where there are two: the third runs past the end.
    view.setInt32(57, 3);
    view.setInt32(23, 2);
    view.setUint32(17, crc32c(broken, 21, broken.length));
    const result = decode(broken, 0);
    expect(result.values).toEqual([]);
    expect(result.undecodable?.error.message).toMatch(/offset 0 is malformed/);
  });

  it("stops at a gzip batch that is not gzip", () => {
    const fake = withAttributes(atOffset(batch(["plain"]), 3), 1);
    expect(decode(fake, 3).undecodable?.error.message).toMatch(
      /offset 3 cannot be decompressed: gzip data is malformed/,
    );
  });

  it("stops at a batch over the decompression bound", () => {
    const big = atOffset(gzipBatch(batch(["x".repeat(100_000)])), 0);
    const out: FetchedRecord[] = [];
    const result = decodeBatches(big, 0, (r) => out.push(r), { maxDecompressedBytes: 50_000 });
    expect(out).toEqual([]);
    expect(result.undecodable?.error.message).toMatch(
      /more than 50000 bytes, the limit for one batch/,
    );
    // Within the bound it reads.
    expect(decodeBatches(big, 0, () => {}, { maxDecompressedBytes: 200_000 }).next).toBe(1);
  });

  it("stops at batches of older formats, small ones included, and skips those already passed", () => {
    // Magic 1 messages (Kafka 0.10 format): offset, size, crc, magic, attributes, timestamp,
    // key, value. Shorter than a magic-2 header.
    const v1 = (offset: number, value: string) => {
      const body = concat(
        new Uint8Array([0, 0, 0, 0, 1, 0]),
        new Uint8Array(8),
        new Uint8Array([0xff, 0xff, 0xff, 0xff]),
        new Uint8Array([0, 0, 0, value.length]),
        text(value),
      );
      const head = new Uint8Array(12);
      const view = new DataView(head.buffer);
      view.setBigInt64(0, BigInt(offset));
      view.setInt32(8, body.length);
      return concat(head, body);
    };
    const bytes = concat(v1(0, "old"), v1(1, "old2"), atOffset(batch(["new"]), 2));
    const first = decode(bytes, 0);
    expect(first.values).toEqual([]);
    expect(first.undecodable).toMatchObject({ baseOffset: 0, lastOffset: 0 });
    expect(first.undecodable?.error.message).toMatch(/format 1/);
    // Past them (skipped before), the format-2 batch reads.
    expect(decode(bytes, 2)).toMatchObject({ values: ["new"], next: 3, undecodable: undefined });
    // A lone small old message is reported, not mistaken for a partial batch.
    expect(decode(v1(5, "x"), 5).undecodable).toMatchObject({ baseOffset: 5, lastOffset: 5 });
  });
});
