import { describe, expect, it } from "vitest";
import { crc32c } from "./crc32c.ts";
import {
  BATCH_HEADER_BYTES,
  BatchError,
  batchBaseOffset,
  encodeRecordBatch,
  parseBatchHeader,
  setBatchBaseOffset,
} from "./record-batch.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("parseBatchHeader", () => {
  it("reads the header fields of a valid batch", () => {
    const batch = encodeRecordBatch(
      [
        { key: bytes("k"), value: bytes("v1"), timestamp: 1000 },
        { value: bytes("v2"), timestamp: 1500 },
        { value: null, timestamp: 1200 },
      ],
      { producerId: 7, producerEpoch: 2, baseSequence: 40 },
    );
    const header = parseBatchHeader(batch, 0);
    expect(header).toMatchObject({
      sizeBytes: batch.length,
      lastOffsetDelta: 2,
      recordCount: 3,
      baseTimestamp: 1000,
      maxTimestamp: 1500,
      producerId: 7,
      producerEpoch: 2,
      baseSequence: 40,
      attributes: 0,
    });
    expect(batch.length).toBeGreaterThan(BATCH_HEADER_BYTES);
  });

  it("parses a batch that sits at an offset inside a larger buffer", () => {
    const a = encodeRecordBatch([{ value: bytes("a") }]);
    const b = encodeRecordBatch([{ value: bytes("bb") }, { value: bytes("cc") }]);
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(parseBatchHeader(both, 0).sizeBytes).toBe(a.length);
    expect(parseBatchHeader(both, a.length).recordCount).toBe(2);
  });

  it("refuses a CRC mismatch anywhere in the covered bytes", () => {
    const batch = encodeRecordBatch([{ value: bytes("payload") }]);
    for (const at of [21, 30, batch.length - 1]) {
      const copy = batch.slice();
      copy[at] = (copy[at] as number) ^ 0x01;
      expect(() => parseBatchHeader(copy, 0)).toThrow(BatchError);
    }
  });

  it("refuses a wrong magic, a truncated batch and a lying length", () => {
    const batch = encodeRecordBatch([{ value: bytes("x") }]);
    const badMagic = batch.slice();
    badMagic[16] = 1;
    expect(() => parseBatchHeader(badMagic, 0)).toThrow(/magic/);
    expect(() => parseBatchHeader(batch.subarray(0, 40), 0)).toThrow(/truncated/);
    expect(() => parseBatchHeader(batch.subarray(0, batch.length - 1), 0)).toThrow(/length/);
    const tooShort = batch.slice();
    new DataView(tooShort.buffer).setInt32(8, 10);
    expect(() => parseBatchHeader(tooShort, 0)).toThrow(/length/);
  });

  it("refuses a record count that disagrees with the last offset delta", () => {
    const batch = encodeRecordBatch([{ value: bytes("x") }, { value: bytes("y") }]);
    const view = new DataView(batch.buffer);
    view.setInt32(57, 5); // record count
    view.setUint32(17, crc32c(batch, 21, batch.length));
    expect(() => parseBatchHeader(batch, 0)).toThrow(/last offset delta/);
  });

  it("rewrites the base offset without breaking the CRC", () => {
    const batch = encodeRecordBatch([{ value: bytes("x") }]);
    setBatchBaseOffset(batch, 123_456_789_012);
    expect(batchBaseOffset(batch)).toBe(123_456_789_012);
    expect(() => parseBatchHeader(batch, 0)).not.toThrow();
  });
});
