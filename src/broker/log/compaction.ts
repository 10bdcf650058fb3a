/**
 * Log compaction for topics created with `cleanup.policy=compact`: of the records that share a
 * key, only the one with the highest offset stays; the others are cut out of their batches.
 * Offsets never change (a compacted log has gaps), and the records that stay are kept byte for
 * byte: a batch keeps its base offset and base timestamp, so its records' deltas still hold,
 * and only its header (record count, max timestamp, length, CRC) is written anew.
 *
 * Where this differs from Kafka's log cleaner (the embedded broker is for development and
 * tests): compressed, transactional and control batches are kept whole and their records do
 * not take part; records without a key stay (Kafka refuses them on a compacted topic); a
 * tombstone (null value) stays as its key's latest record instead of going after
 * delete.retention.ms; the newest batch is compacted too (Kafka leaves the active segment).
 */

import { crc32c } from "../../kafka/protocol/crc32c.ts";
import {
  ATTRIBUTES_AT,
  BASE_TIMESTAMP_AT,
  BATCH_HEADER_BYTES,
  BATCH_LOG_OVERHEAD,
  CONTROL_FLAG,
  CRC_AT,
  MAX_TIMESTAMP_AT,
  RECORD_COUNT_AT,
} from "../../kafka/protocol/record-batch.ts";
import { Reader } from "../../kafka/protocol/wire.ts";

const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL_FLAG = 0x10;

/** One record of an uncompressed batch: where its bytes lie, and what compaction reads. */
export interface RecordSpan {
  offset: number;
  timestamp: number;
  /** The key as text of its bytes (latin1: every byte sequence maps to a distinct string). */
  key: string | null;
  start: number;
  end: number;
}

/**
 * The records of `batch` with their spans, or null when compaction leaves the batch whole
 * (compressed, transactional or control).
 */
export function recordSpans(batch: Uint8Array): RecordSpan[] | null {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const attributes = view.getInt16(ATTRIBUTES_AT);
  if ((attributes & (COMPRESSION_MASK | TRANSACTIONAL_FLAG | CONTROL_FLAG)) !== 0) return null;
  const baseOffset = Number(view.getBigInt64(0));
  const baseTimestamp = Number(view.getBigInt64(BASE_TIMESTAMP_AT));
  const count = view.getInt32(RECORD_COUNT_AT);
  const r = new Reader(batch, BATCH_HEADER_BYTES);
  const spans: RecordSpan[] = [];
  for (let i = 0; i < count; i++) {
    const start = r.offset;
    const length = r.varint();
    const end = r.offset + length;
    r.int8(); // attributes
    const timestamp = baseTimestamp + r.varlong();
    const offset = baseOffset + r.varint();
    const keyLength = r.varint();
    const key = keyLength < 0 ? null : Buffer.from(r.raw(keyLength)).toString("latin1");
    spans.push({ offset, timestamp, key, start, end });
    r.offset = end;
  }
  return spans;
}

/**
 * Compacts a partition's batches (in offset order): for each batch, the same batch when it
 * loses nothing, a rewritten one when it loses some records, or null when it loses them all.
 */
export function compactBatches(batches: readonly Uint8Array[]): (Uint8Array | null)[] {
  const spans = batches.map(recordSpans);
  const latest = new Map<string, number>();
  for (const list of spans) {
    for (const s of list ?? []) if (s.key !== null) latest.set(s.key, s.offset);
  }
  return batches.map((batch, i) => {
    const list = spans[i];
    if (list === null || list === undefined) return batch;
    const kept = list.filter((s) => s.key === null || latest.get(s.key) === s.offset);
    if (kept.length === list.length) return batch;
    return kept.length === 0 ? null : rewriteBatch(batch, kept);
  });
}

/** `batch` with only the records of `kept`: same header fields but count, max timestamp, size, CRC. */
function rewriteBatch(batch: Uint8Array, kept: readonly RecordSpan[]): Uint8Array {
  let size = BATCH_HEADER_BYTES;
  for (const s of kept) size += s.end - s.start;
  const out = new Uint8Array(size);
  out.set(batch.subarray(0, BATCH_HEADER_BYTES));
  let at = BATCH_HEADER_BYTES;
  let maxTimestamp = Number.NEGATIVE_INFINITY;
  for (const s of kept) {
    out.set(batch.subarray(s.start, s.end), at);
    at += s.end - s.start;
    maxTimestamp = Math.max(maxTimestamp, s.timestamp);
  }
  const view = new DataView(out.buffer);
  view.setInt32(8, size - BATCH_LOG_OVERHEAD);
  view.setBigInt64(MAX_TIMESTAMP_AT, BigInt(maxTimestamp));
  view.setInt32(RECORD_COUNT_AT, kept.length);
  view.setUint32(CRC_AT, crc32c(out, ATTRIBUTES_AT, out.length));
  return out;
}
