/**
 * Record batches (magic 2) for the gateway's Kafka client: contract records encoded into one
 * batch per partition (uncompressed unless a codec is asked for), and fetched batches checked
 * (CRC-32C) and decoded back, whatever their codec (compression.ts; control batches
 * skipped). Decoding stops at the first batch it cannot read and says which: the caller's
 * policy decides whether to hold the partition there or skip it. Header values are text in
 * the contract, so they are decoded as UTF-8 here, with a fast path for the ASCII the
 * contract's headers almost always are.
 */

import type { RecordHeader } from "../record-contract.ts";
import {
  type CompressionCodec,
  CompressionError,
  codecId,
  compressRecords,
  decompressRecords,
  type ZstdReader,
} from "./compression.ts";
import { crc32c, crc32cParts } from "./crc32c.ts";
import {
  ATTRIBUTES_AT,
  BASE_TIMESTAMP_AT,
  BATCH_HEADER_BYTES,
  BATCH_LOG_OVERHEAD,
  CONTROL_FLAG,
  CRC_AT,
  LAST_OFFSET_DELTA_AT,
  MAGIC_AT,
  RECORD_COUNT_AT,
} from "./record-batch.ts";
import { MIN_REF_BYTES, Reader, Writer } from "./wire.ts";

/** A record on its way to Kafka (the contract's record, or anything shaped like it). */
export interface OutgoingRecord {
  key: string | null;
  /**
   * The value, or its bytes as pieces in order (a changelog entry keeping a large reply:
   * the reply goes in as it is, not copied into a joined entry first); null: a tombstone.
   */
  value: Uint8Array | readonly Uint8Array[] | null;
  headers: readonly RecordHeader[];
  /** The partition to write to; absent: murmur2 of the key (Kafka's default partitioner). */
  partition?: number;
}

/** A record read from Kafka. */
export interface FetchedRecord {
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
  /**
   * The header values as the bytes on the wire (views into the fetched data), when the
   * reader asked for them: byte-exact even where a value is not valid UTF-8.
   */
  headerBytes?: (readonly [name: string, value: Uint8Array])[];
}

/** How records are decoded. */
export interface DecodeOptions {
  /** Also give each record its header values as bytes (`headerBytes`). */
  headerBytes?: boolean;
  /**
   * Headers whose values repeat record after record (a request's service, method and reply
   * topic): an ASCII value seen before is the string made the first time (bounded, as names).
   */
  repeatedValues?: ReadonlySet<string>;
  /** Most bytes one batch's records may decompress to (default `DEFAULT_BATCH_MAX_BYTES`). */
  maxDecompressedBytes?: number;
  /** How zstd is read (tests and the bench force the pure-JS reader). */
  zstdReader?: ZstdReader;
}

/** The decompressed size a batch may have unless the reader says otherwise: 64 MiB. */
export const DEFAULT_BATCH_MAX_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();
const empty = new Uint8Array(0);

const COMPRESSION_MASK = 0x07;

/** One batch of `records` stamped `timestamp`, base offset 0, CRC set. */
export function encodeBatch(
  records: readonly OutgoingRecord[],
  timestamp: number,
  codec: CompressionCodec = "none",
): Uint8Array {
  const w = new Writer(BATCH_HEADER_BYTES + records.length * 160);
  writeBatch(w, records, timestamp, codec);
  return w.bytesView().slice();
}

// A record's parts before and after its value are written here first: its size prefix is a
// varint, known only once they are written. The value goes straight into the batch.
const recordHead = new Writer(256);
const recordTail = new Writer(1024);
// A compressed batch's records are written here, then compressed into the batch.
const recordsScratch = new Writer(16 * 1024);

/**
 * Bytes one uncompressed batch of `records` takes when its keys and header text are ASCII (a
 * compressed one is nearly always smaller): what a Produce request sizes its buffer by. Other
 * UTF-8 takes up to 3 bytes a character, and the buffer then grows as it is written. A bound
 * of 3 bytes for every character sized a request of 100-byte records at about 2.8 times its
 * bytes, and every one of those bytes was zeroed and, in a burst, kept by the allocator.
 * `byReference`: the bytes of the writer's own buffer when `writeBatch` appends the large
 * values by reference.
 */
export function batchBytes(records: readonly OutgoingRecord[], byReference = false): number {
  let bytes = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as OutgoingRecord;
    // size, attributes, timestamp and offset deltas, key, value and header count prefixes
    bytes += 5 + 1 + 1 + 5 + 5 + 5 + 5 + 5;
    if (record.key !== null) bytes += record.key.length;
    const value = record.value;
    if (value instanceof Uint8Array) bytes += copiedBytes(value, byReference);
    else if (value !== null) for (const part of value) bytes += copiedBytes(part, byReference);
    bytes += headersBytes(record.headers);
  }
  return bytes;
}

/** Bytes of `part` a writer's own buffer takes (none when it is appended by reference). */
function copiedBytes(part: Uint8Array, byReference: boolean): number {
  return byReference && part.length >= MIN_REF_BYTES ? 0 : part.length;
}

/**
 * Bytes `headers` take as record headers (or as the changelog's copies of them) when their
 * text is ASCII: each name and value with a length prefix of up to 5 bytes (see batchBytes).
 */
export function headersBytes(headers: readonly RecordHeader[]): number {
  let bytes = 0;
  for (let h = 0; h < headers.length; h++) {
    const header = headers[h] as RecordHeader;
    bytes += 10 + header[0].length + header[1].length;
  }
  return bytes;
}

/**
 * Appends one batch of `records` to `w` (base offset 0, CRC set). Uncompressed, it is written
 * in place rather than built apart and copied: a Produce request carries it as it is.
 * `byReference`: values of `MIN_REF_BYTES` and more are appended by reference (`rawRef`), not
 * copied, and must not change until `w`'s bytes are written out.
 */
export function writeBatch(
  w: Writer,
  records: readonly OutgoingRecord[],
  timestamp: number,
  codec: CompressionCodec = "none",
  byReference = false,
): void {
  const start = w.offset;
  const startLength = w.length;
  w.int64(0) // base offset: the broker assigns offsets
    .int32(0) // batch length, patched below
    .int32(-1) // partition leader epoch: the broker's to set
    .int8(2)
    .uint32(0) // crc, patched below
    .int16(codecId(codec)) // attributes: the codec, CreateTime, not transactional
    .int32(records.length - 1)
    .int64(timestamp)
    .int64(timestamp)
    .int64(-1) // producer id: not idempotent
    .int16(-1)
    .int32(-1)
    .int32(records.length);
  if (codec === "none") writeRecords(w, records, byReference);
  else {
    recordsScratch.offset = 0;
    writeRecords(recordsScratch, records, false);
    w.raw(compressRecords(codec, recordsScratch.bytesView()));
  }
  w.patchInt32(start + 8, w.length - startLength - BATCH_LOG_OVERHEAD);
  const crcFrom = start + ATTRIBUTES_AT;
  const crc =
    w.length - startLength === w.offset - start
      ? crc32c(w.ownBytes(), crcFrom, w.offset)
      : crc32cParts(w.segments(crcFrom));
  w.patchUint32(start + CRC_AT, crc);
}

/** The records part of a batch (each record's size, then the record). */
function writeRecords(w: Writer, records: readonly OutgoingRecord[], byReference: boolean): void {
  const head = recordHead;
  const tail = recordTail;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as OutgoingRecord;
    head.offset = 0;
    head.int8(0).varint(0).varint(i);
    if (record.key === null) head.varint(-1);
    else writeText(head, record.key);
    tail.offset = 0;
    tail.varint(record.headers.length);
    for (const [name, value] of record.headers) {
      writeText(tail, name);
      writeText(tail, value);
    }
    const value = record.value;
    const valueLength = value === null ? -1 : valueBytes(value);
    const size = head.offset + varintBytes(valueLength) + Math.max(valueLength, 0) + tail.offset;
    w.varint(size).rawFrom(head).varint(valueLength);
    if (value instanceof Uint8Array) appendValue(w, value, byReference);
    else if (value !== null) for (const part of value) appendValue(w, part, byReference);
    w.rawFrom(tail);
  }
}

/** Appends a value or a piece of one: by reference when asked (see `writeBatch`), else copied. */
function appendValue(w: Writer, part: Uint8Array, byReference: boolean): void {
  if (byReference) w.rawRef(part);
  else w.raw(part);
}

/** Bytes of an outgoing value, whole or in pieces. */
export function valueBytes(value: Uint8Array | readonly Uint8Array[]): number {
  if (value instanceof Uint8Array) return value.length;
  let n = 0;
  for (const part of value) n += part.length;
  return n;
}

/** Bytes of `v` as a zigzag varint. */
function varintBytes(v: number): number {
  let u = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (u >= 0x80) {
    u >>>= 7;
    n++;
  }
  return n;
}

function writeText(w: Writer, text: string): void {
  // Header names and values are nearly always ASCII (correlation ids are 69 characters): copy
  // them byte by byte in one pass, and encode only text that turns out not to be.
  if (text.length < 1024) {
    const start = w.offset;
    if (w.varint(text.length).tryAscii(text)) return;
    w.offset = start;
  }
  const bytes = encoder.encode(text);
  w.varint(bytes.length).raw(bytes);
}

/** Text of UTF-8 `bytes` (invalid sequences become U+FFFD, as with a TextDecoder). */
export function utf8(bytes: Uint8Array): string {
  // Buffer's decoder is about twice as fast as TextDecoder or a JS loop on short strings.
  return bufferOf(bytes).toString("utf8");
}

/** Header names decoded before, by a hash of their bytes (see knownText). */
const knownNames = new Map<number, string>();
/** Names past this many are decoded each time: a producer cannot grow the table for ever. */
const maxKnownNames = 1024;
/** Values of `DecodeOptions.repeatedValues` headers decoded before, bounded the same way. */
const knownValues = new Map<number, string>();
const maxKnownValues = 1024;
/** Longer text is decoded each time. */
const maxKnownLength = 128;

/**
 * The text of `length` bytes at `start` of `text`. Every record carries the same few header
 * names (and some the same values), so ASCII text seen before is the string made the first
 * time: no new string per header per record.
 */
function knownText(
  text: Buffer,
  start: number,
  length: number,
  known: Map<number, string>,
  max: number,
): string {
  const end = start + length;
  if (length > maxKnownLength) return text.toString("utf8", start, end);
  let hash = 0x811c9dc5 ^ length;
  for (let i = start; i < end; i++) {
    const byte = text[i] as number;
    if (byte >= 0x80) return text.toString("utf8", start, end);
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  const found = known.get(hash);
  if (found !== undefined && found.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (found.charCodeAt(i) !== text[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return found;
  }
  const made = text.toString("latin1", start, end);
  if (found === undefined && known.size < max) known.set(hash, made);
  return made;
}

function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** A zigzag varlong as a number (record timestamp deltas), without BigInt. */
function varlong(r: Reader): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = r.uint8();
    result += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
    scale *= 128;
  }
  throw new RecordDecodeError("varlong too long");
}

/** Why fetched bytes could not be read as records. */
export class RecordDecodeError extends Error {
  override name = "RecordDecodeError";
}

/** A batch that could not be read: where it is and why. */
export interface UndecodableBatch {
  /** The batch's first offset (for an old-format message, its offset). */
  baseOffset: number;
  /** The last offset it covers, as far as can be told: skipping it reads on past this. */
  lastOffset: number;
  error: RecordDecodeError;
}

/** What `decodeBatches` read. */
export interface DecodedBatches {
  /** The offset to read next: past the last batch read, or `from` if none was. */
  next: number;
  /** The first batch that could not be read; decoding stopped there. */
  undecodable?: UndecodableBatch;
  /** With `undecodable`: where in the bytes the batch after it starts (to read on past it). */
  resumeAt?: number;
}

/**
 * Decodes the complete batches in `bytes` (a Fetch response's records), calling `onRecord`
 * for records at or past `from`, until the end or the first batch it cannot read (CRC
 * mismatch, an older format, a codec it lacks, broken records, over the size bound), which it
 * returns as `undecodable` without calling `onRecord` for any of its records. A trailing
 * partial batch is normal (the broker cuts at a size limit).
 */
export function decodeBatches(
  bytes: Uint8Array,
  from: number,
  onRecord: (record: FetchedRecord) => void,
  decode: DecodeOptions = {},
): DecodedBatches {
  let next = from;
  let at = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Offset and length lead every format; the magic byte follows at 16 (older message sets
  // can be shorter than a magic-2 header, so only 17 bytes are needed to judge one).
  while (bytes.length - at >= MAGIC_AT + 1) {
    const batchLength = view.getInt32(at + 8);
    const end = at + BATCH_LOG_OVERHEAD + batchLength;
    if (batchLength < 0 || end > bytes.length) break;
    const baseOffset = Number(view.getBigInt64(at));
    const magic = view.getInt8(at + MAGIC_AT);
    if (magic !== 2 || batchLength < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD) {
      // A format 0/1 message's offset is its last (inner) offset.
      if (baseOffset < from) {
        at = end;
        continue;
      }
      const error = new RecordDecodeError(
        magic !== 2
          ? `record batch at offset ${baseOffset} has format ${magic}; only format 2 (Kafka 0.11+) is read`
          : `record batch at offset ${baseOffset} is ${batchLength + BATCH_LOG_OVERHEAD} bytes, shorter than its header`,
      );
      return stopAt(bytes, view, end, next, { baseOffset, lastOffset: baseOffset, error });
    }
    const attributes = view.getInt16(at + ATTRIBUTES_AT);
    const lastOffsetDelta = view.getInt32(at + LAST_OFFSET_DELTA_AT);
    const lastOffset = baseOffset + Math.max(0, lastOffsetDelta);
    if (lastOffset >= from) {
      const expectedCrc = view.getUint32(at + CRC_AT);
      const actualCrc = crc32c(bytes, at + ATTRIBUTES_AT, end);
      if (expectedCrc !== actualCrc) {
        const error = new RecordDecodeError(
          `record batch at offset ${baseOffset} is corrupt: CRC-32C ${actualCrc} where its header says ${expectedCrc}`,
        );
        return stopAt(bytes, view, end, next, { baseOffset, lastOffset, error });
      }
      if ((attributes & CONTROL_FLAG) === 0) {
        // Records are gathered first: a batch that breaks halfway hands on none of them.
        const records: FetchedRecord[] = [];
        try {
          decodeRecords(bytes.subarray(at, end), view, at, from, records, decode);
        } catch (error) {
          const reason =
            error instanceof RecordDecodeError
              ? error
              : new RecordDecodeError(
                  `record batch at offset ${baseOffset} ${error instanceof CompressionError ? "cannot be decompressed" : "is malformed"}: ${(error as Error).message}`,
                );
          return stopAt(bytes, view, end, next, { baseOffset, lastOffset, error: reason });
        }
        for (const record of records) onRecord(record);
      }
    }
    next = Math.max(next, lastOffset + 1);
    at = end;
  }
  return { next };
}

/**
 * The result for decoding stopped at `batch`. When another batch follows it in the bytes,
 * its base offset bounds how far skipping `batch` reaches (a corrupt header may claim more).
 */
function stopAt(
  bytes: Uint8Array,
  view: DataView,
  end: number,
  next: number,
  batch: UndecodableBatch,
): DecodedBatches {
  if (bytes.length - end >= BATCH_LOG_OVERHEAD) {
    const following = Number(view.getBigInt64(end));
    if (following > batch.baseOffset) batch.lastOffset = Math.min(batch.lastOffset, following - 1);
  }
  return { next, undecodable: batch, resumeAt: end };
}

/** The records of one magic-2 batch (`batch`, at `at` in `view`) at or past `from`. */
function decodeRecords(
  batch: Uint8Array,
  view: DataView,
  at: number,
  from: number,
  out: FetchedRecord[],
  decode: DecodeOptions,
): void {
  const baseOffset = Number(view.getBigInt64(at));
  const attributes = view.getInt16(at + ATTRIBUTES_AT);
  const baseTimestamp = Number(view.getBigInt64(at + BASE_TIMESTAMP_AT));
  const count = view.getInt32(at + RECORD_COUNT_AT);
  const records = decompressRecords(
    attributes & COMPRESSION_MASK,
    batch.subarray(BATCH_HEADER_BYTES),
    decode.maxDecompressedBytes ?? DEFAULT_BATCH_MAX_BYTES,
    decode.zstdReader,
  );
  const r = new Reader(records);
  const text = bufferOf(records);
  const repeated = decode.repeatedValues;
  const string = (length: number): string => {
    const start = r.skip(length); // bounds check, then decode in place
    return text.toString("utf8", start, start + length);
  };
  for (let i = 0; i < count; i++) {
    const length = r.varint();
    const recordEnd = r.offset + length;
    r.int8(); // attributes
    const timestamp = baseTimestamp + varlong(r);
    const offset = baseOffset + r.varint();
    const keyLength = r.varint();
    const key = keyLength < 0 ? null : r.raw(keyLength);
    const valueLength = r.varint();
    const value = valueLength < 0 ? null : r.raw(valueLength);
    const headerCount = r.varint();
    const headers: RecordHeader[] = new Array(headerCount > 0 ? headerCount : 0);
    const raw: (readonly [string, Uint8Array])[] | undefined = decode.headerBytes ? [] : undefined;
    for (let h = 0; h < headerCount; h++) {
      const nameLength = r.varint();
      const name = knownText(text, r.skip(nameLength), nameLength, knownNames, maxKnownNames);
      const valueBytes = r.varint();
      if (raw)
        raw.push([
          name,
          valueBytes < 0 ? empty : records.subarray(r.offset, r.offset + valueBytes),
        ]);
      headers[h] = [
        name,
        valueBytes < 0
          ? ""
          : repeated?.has(name)
            ? knownText(text, r.skip(valueBytes), valueBytes, knownValues, maxKnownValues)
            : string(valueBytes),
      ];
    }
    r.offset = recordEnd;
    if (offset < from) continue;
    if (raw) out.push({ offset, timestamp, key, value, headers, headerBytes: raw });
    else out.push({ offset, timestamp, key, value, headers });
  }
}
