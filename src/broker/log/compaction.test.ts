import { describe, expect, it } from "vitest";
import { crc32c } from "../../kafka/protocol/crc32c.ts";
import {
  ATTRIBUTES_AT,
  CRC_AT,
  encodeRecordBatch,
  type RecordInput,
  setBatchBaseOffset,
} from "../../kafka/protocol/record-batch.ts";
import { decodeBatches, type FetchedRecord } from "../../kafka/protocol/record-codec.ts";
import { compactBatches } from "./compaction.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** A batch of `records` at `baseOffset`, as the log holds it. */
function batchAt(baseOffset: number, records: RecordInput[]): Uint8Array {
  const batch = encodeRecordBatch(records);
  setBatchBaseOffset(batch, baseOffset);
  return batch;
}

const rec = (key: string | null, value: string | null, timestamp = 1_000): RecordInput => ({
  key: key === null ? null : bytes(key),
  value: value === null ? null : bytes(value),
  headers: [{ key: "h", value: bytes(`${key}=${value}`) }],
  timestamp,
});

function readAll(batches: readonly (Uint8Array | null)[]): FetchedRecord[] {
  const out: FetchedRecord[] = [];
  for (const b of batches) if (b) decodeBatches(b, 0, (r) => out.push(r));
  return out;
}

describe("compaction", () => {
  it("keeps only the latest record of each key, at its own offset, byte for byte", () => {
    const batches = [
      batchAt(0, [rec("a", "1", 10), rec("b", "1", 11), rec("a", "2", 12)]),
      batchAt(3, [rec("c", "1", 13), rec("b", "2", 14)]),
      batchAt(5, [rec("a", "3", 15)]),
    ];
    const compacted = compactBatches(batches);
    const records = readAll(compacted);
    expect(records.map((r) => [r.offset, text(r.key), text(r.value), r.timestamp])).toEqual([
      [3, "c", "1", 13],
      [4, "b", "2", 14],
      [5, "a", "3", 15],
    ]);
    expect(records[0]?.headers).toEqual([["h", "c=1"]]);
    // The first batch lost every record; the last lost none and is the same object.
    expect(compacted[0]).toBeNull();
    expect(compacted[2]).toBe(batches[2]);
  });

  it("writes a rewritten batch's header anew: count, max timestamp, length and a valid CRC", () => {
    const [batch] = compactBatches([
      batchAt(7, [rec("a", "1", 50), rec("b", "1", 40), rec("a", "2", 30)]),
    ]);
    if (!batch) throw new Error("batch dropped");
    const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    expect(Number(view.getBigInt64(0))).toBe(7);
    expect(view.getInt32(8)).toBe(batch.length - 12);
    expect(view.getInt32(23)).toBe(2); // last offset delta unchanged: offsets keep their gaps
    expect(Number(view.getBigInt64(35))).toBe(40); // max timestamp of the records kept
    expect(view.getInt32(57)).toBe(2);
    expect(view.getUint32(CRC_AT)).toBe(crc32c(batch, ATTRIBUTES_AT, batch.length));
  });

  it("keeps records without a key, tombstones as their key's latest, and compressed batches whole", () => {
    const compressed = batchAt(2, [rec("a", "old")]);
    compressed[ATTRIBUTES_AT + 1] = (compressed[ATTRIBUTES_AT + 1] as number) | 0x01; // gzip bit
    const compacted = compactBatches([
      batchAt(0, [rec(null, "x"), rec("a", "1")]),
      compressed,
      batchAt(3, [rec("a", null), rec(null, "y")]),
    ]);
    expect(compacted[1]).toBe(compressed);
    const plain = readAll([compacted[0] ?? null, compacted[2] ?? null]);
    expect(plain.map((r) => [r.offset, text(r.key), text(r.value)])).toEqual([
      [0, null, "x"],
      [3, "a", null],
      [4, null, "y"],
    ]);
  });
});
