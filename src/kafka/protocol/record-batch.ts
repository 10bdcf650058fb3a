/**
 * Kafka record batches (magic 2). The broker reads only the fixed 61-byte header and
 * keeps the batch bytes as received: records, and any compression, pass through untouched.
 * `encodeRecordBatch` builds uncompressed batches for tests and tools.
 */
import { crc32c } from "./crc32c.ts";
import { Writer } from "./wire.ts";

/** Size of the fixed batch header; records start here. */
export const BATCH_HEADER_BYTES = 61;
/** baseOffset (8) + batchLength (4): the part of the header outside `batchLength`. */
export const BATCH_LOG_OVERHEAD = 12;

// Where the header's fields sit (the broker reads them; the gateway's client too).
export const MAGIC_AT = 16;
export const CRC_AT = 17;
/** The CRC covers everything from the attributes field to the end of the batch. */
export const ATTRIBUTES_AT = 21;
export const LAST_OFFSET_DELTA_AT = 23;
export const BASE_TIMESTAMP_AT = 27;
export const MAX_TIMESTAMP_AT = 35;
const PRODUCER_ID_AT = 43;
const PRODUCER_EPOCH_AT = 51;
const BASE_SEQUENCE_AT = 53;
export const RECORD_COUNT_AT = 57;

const TRANSACTIONAL_FLAG = 0x10;
export const CONTROL_FLAG = 0x20;

/** The fields of a batch header the broker acts on. */
export interface BatchHeader {
  /** Total size of the batch in bytes, header included. */
  sizeBytes: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

/** Why a batch was refused (the broker answers CORRUPT_MESSAGE). */
export class BatchError extends Error {
  override name = "BatchError";
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Parses and checks the batch that starts at `at` in `buf` (magic, sizes, CRC-32C, record
 * count); throws BatchError when it is not a well-formed magic-2 batch.
 */
export function parseBatchHeader(buf: Uint8Array, at: number): BatchHeader {
  const left = buf.length - at;
  if (left < BATCH_HEADER_BYTES) throw new BatchError(`batch header truncated (${left} bytes)`);
  const view = viewOf(buf);
  const batchLength = view.getInt32(at + 8);
  const sizeBytes = BATCH_LOG_OVERHEAD + batchLength;
  if (batchLength < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD || sizeBytes > left) {
    throw new BatchError(`batch length ${batchLength} does not fit the ${left} bytes given`);
  }
  const magic = view.getInt8(at + MAGIC_AT);
  if (magic !== 2) throw new BatchError(`unsupported record batch magic ${magic}`);
  const expectedCrc = view.getUint32(at + CRC_AT);
  const actualCrc = crc32c(buf, at + ATTRIBUTES_AT, at + sizeBytes);
  if (expectedCrc !== actualCrc) {
    throw new BatchError(`batch CRC mismatch (header ${expectedCrc}, computed ${actualCrc})`);
  }
  const lastOffsetDelta = view.getInt32(at + LAST_OFFSET_DELTA_AT);
  const recordCount = view.getInt32(at + RECORD_COUNT_AT);
  // Producers always number records 0..count-1; anything else would give us offsets we
  // cannot account for.
  if (recordCount < 1 || lastOffsetDelta !== recordCount - 1) {
    throw new BatchError(
      `batch of ${recordCount} records with last offset delta ${lastOffsetDelta}`,
    );
  }
  return {
    sizeBytes,
    attributes: view.getInt16(at + ATTRIBUTES_AT),
    lastOffsetDelta,
    baseTimestamp: Number(view.getBigInt64(at + BASE_TIMESTAMP_AT)),
    maxTimestamp: Number(view.getBigInt64(at + MAX_TIMESTAMP_AT)),
    producerId: Number(view.getBigInt64(at + PRODUCER_ID_AT)),
    producerEpoch: view.getInt16(at + PRODUCER_EPOCH_AT),
    baseSequence: view.getInt32(at + BASE_SEQUENCE_AT),
    recordCount,
  };
}

/** Whether the batch is transactional or a control batch (the broker supports neither). */
export function isTransactionalOrControl(header: BatchHeader): boolean {
  return (header.attributes & (TRANSACTIONAL_FLAG | CONTROL_FLAG)) !== 0;
}

/** Writes the broker-assigned base offset into a stored batch (outside the CRC's range). */
export function setBatchBaseOffset(batch: Uint8Array, baseOffset: number): void {
  viewOf(batch).setBigInt64(0, BigInt(baseOffset));
}

/** Reads a batch's base offset. */
export function batchBaseOffset(batch: Uint8Array): number {
  return Number(viewOf(batch).getBigInt64(0));
}

/** One record for `encodeRecordBatch`. */
export interface RecordInput {
  key?: Uint8Array | null;
  value?: Uint8Array | null;
  headers?: readonly { key: string; value: Uint8Array | null }[];
  timestamp?: number;
}

/** Producer identity for idempotent batches. */
export interface BatchProducer {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

const textEncoder = new TextEncoder();

/** Builds an uncompressed magic-2 record batch with base offset 0 and a valid CRC. */
export function encodeRecordBatch(
  records: readonly RecordInput[],
  producer: BatchProducer = { producerId: -1, producerEpoch: -1, baseSequence: -1 },
): Uint8Array {
  if (records.length === 0) throw new RangeError("a record batch needs at least one record");
  const now = Date.now();
  const timestamps = records.map((r) => r.timestamp ?? now);
  const baseTimestamp = Math.min(...timestamps);
  const maxTimestamp = Math.max(...timestamps);
  const w = new Writer(BATCH_HEADER_BYTES + records.length * 32);
  w.int64(0); // baseOffset
  w.int32(0); // batchLength, set below
  w.int32(0); // partitionLeaderEpoch
  w.int8(2); // magic
  w.uint32(0); // crc, set below
  w.int16(0); // attributes: no compression, CreateTime
  w.int32(records.length - 1);
  w.int64(baseTimestamp);
  w.int64(maxTimestamp);
  w.int64(producer.producerId);
  w.int16(producer.producerEpoch);
  w.int32(producer.baseSequence);
  w.int32(records.length);
  records.forEach((record, index) => {
    const body = new Writer(64);
    body.int8(0); // record attributes
    body.varlong((timestamps[index] as number) - baseTimestamp);
    body.varint(index); // offset delta
    writeVarBytes(body, record.key ?? null);
    writeVarBytes(body, record.value ?? null);
    const headers = record.headers ?? [];
    body.varint(headers.length);
    for (const header of headers) {
      writeVarBytes(body, textEncoder.encode(header.key));
      writeVarBytes(body, header.value);
    }
    const bytes = body.bytesView();
    w.varint(bytes.length).raw(bytes);
  });
  const batch = w.bytesView().slice();
  const view = viewOf(batch);
  view.setInt32(8, batch.length - BATCH_LOG_OVERHEAD);
  view.setUint32(CRC_AT, crc32c(batch, ATTRIBUTES_AT, batch.length));
  return batch;
}

function writeVarBytes(w: Writer, bytes: Uint8Array | null): void {
  if (bytes === null) w.varint(-1);
  else w.varint(bytes.length).raw(bytes);
}
