/**
 * Produce (v3-v8): checks each record batch's header (magic, length, CRC-32C), puts the
 * batch into the log with a broker-assigned base offset (copied once: into the log's reused
 * memory, or for a large batch out of a shared socket chunk), and applies idempotent-producer
 * sequence checks. acks=0 gets no response at all, as with Kafka.
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  BatchError,
  type BatchHeader,
  isTransactionalOrControl,
  parseBatchHeader,
} from "../../kafka/protocol/record-batch.ts";
import type { Reader } from "../../kafka/protocol/wire.ts";
import type { ApiHandler } from "../api.ts";
import type { FaultState } from "../broker-faults.ts";
import type { BrokerState } from "../broker-state.ts";
import type { PartitionLog } from "../log/partition-log.ts";

interface PartitionResult {
  index: number;
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
}

interface TopicResult {
  name: string;
  partitions: PartitionResult[];
}

interface PartitionData {
  index: number;
  records: Uint8Array | null;
}

function readTopic(r: Reader): { name: string; partitions: PartitionData[] } {
  const name = r.string();
  const partitions = r.array((p) => ({ index: p.int32(), records: p.nullableBytes() }));
  return { name, partitions };
}

function failed(index: number, errorCode: number): PartitionResult {
  return { index, errorCode, baseOffset: -1, logStartOffset: -1 };
}

/**
 * Bytes a request's array may hold beyond the request itself for its batches to be kept
 * as views of it (the size prefix a read may carry before it).
 */
const OWNED_SLACK_BYTES = 4;

/**
 * Whether the request is the only thing in its array: a request the connection assembled
 * from several reads, or one read that carried exactly it. Its large batches (those the log
 * keeps rather than copies) can then go into the log as views, pinning nothing but the
 * request; a request that shares a socket chunk with other bytes has them copied out.
 */
export function ownsItsArray(request: Uint8Array): boolean {
  return request.buffer.byteLength - request.byteLength <= OWNED_SLACK_BYTES;
}

/** Validates every batch of a partition's record set, then appends them in order. */
function appendRecords(
  log: PartitionLog,
  index: number,
  records: Uint8Array,
  alter: ((batch: Uint8Array) => void) | undefined,
  maxBatchBytes: number,
  owned: boolean,
): PartitionResult {
  const headers: BatchHeader[] = [];
  const starts: number[] = [];
  try {
    for (let at = 0; at < records.length; ) {
      const header = parseBatchHeader(records, at);
      if (isTransactionalOrControl(header)) return failed(index, ErrorCode.INVALID_RECORD);
      // Kafka's message.max.bytes bounds each batch as written, whatever its records' sizes.
      if (header.sizeBytes > maxBatchBytes) return failed(index, ErrorCode.MESSAGE_TOO_LARGE);
      headers.push(header);
      starts.push(at);
      at += header.sizeBytes;
    }
  } catch (err) {
    if (err instanceof BatchError) return failed(index, ErrorCode.CORRUPT_MESSAGE);
    throw err;
  }
  if (headers.length === 0) return failed(index, ErrorCode.CORRUPT_MESSAGE);
  let firstOffset = -1;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i] as BatchHeader;
    const start = starts[i] as number;
    // The log copies what it must (PartitionLog.append): a large batch of a request alone
    // in its array it may keep; one of a request sharing a socket chunk it copies out.
    const batch = records.subarray(start, start + header.sizeBytes);
    if (i === 0) alter?.(batch);
    const result = log.append(batch, header, owned);
    if (result.errorCode !== ErrorCode.NONE) return failed(index, result.errorCode);
    if (i === 0) firstOffset = result.baseOffset;
  }
  return {
    index,
    errorCode: ErrorCode.NONE,
    baseOffset: firstOffset,
    logStartOffset: log.logStartOffset,
  };
}

/** The Produce handler. */
export function createProduceHandler(state: BrokerState, faults?: FaultState): ApiHandler {
  return {
    apiKey: ApiKey.Produce,
    name: "Produce",
    minVersion: 3,
    maxVersion: 8,
    firstFlexibleVersion: 9,
    handle(req, ctx) {
      req.nullableString(); // transactional id
      const acks = req.int16();
      req.int32(); // timeout
      // Parse the whole request before appending anything: a truncated request must not
      // leave half of its partitions written.
      const topics = req.array(readTopic);
      const owned = ownsItsArray(req.buf);
      const injected = ctx.injectedError;
      const validAcks = acks === 0 || acks === 1 || acks === -1;
      const results: TopicResult[] = topics.map((topic) => ({
        name: topic.name,
        partitions: topic.partitions.map(({ index, records }) => {
          if (injected !== undefined) return failed(index, injected);
          const refused = ctx.partitionFaults?.partitionError(topic.name, index);
          if (refused !== undefined) return failed(index, refused);
          if (!validAcks) return failed(index, ErrorCode.INVALID_REQUIRED_ACKS);
          const log = state.topics.partition(topic.name, index);
          if (log === undefined) return failed(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
          if (records === null) return failed(index, ErrorCode.CORRUPT_MESSAGE);
          return appendRecords(
            log,
            index,
            records,
            faults?.takeBatchAlter(topic.name),
            state.maxMessageBytes,
            owned,
          );
        }),
      }));
      if (acks === 0) return null;
      const version = ctx.apiVersion;
      return (w) => {
        w.array(results, (w, topic) => {
          w.string(topic.name);
          w.array(topic.partitions, (w, p) => {
            w.int32(p.index).int16(p.errorCode).int64(p.baseOffset);
            w.int64(-1); // log append time: topics use CreateTime
            if (version >= 5) w.int64(p.logStartOffset);
            if (version >= 8) {
              w.int32(0); // record errors
              w.nullableString(null); // error message
            }
          });
        });
        w.int32(0); // throttle time
      };
    },
  };
}
