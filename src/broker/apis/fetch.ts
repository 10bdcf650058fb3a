/**
 * Fetch (v4-v11), sessionless. Answers at once when there is an error or at least MinBytes
 * of data; otherwise long-polls: it registers on every partition it reads and is woken by
 * the next append (no timer polling), or answers empty when MaxWaitMs runs out. Record
 * batches go into the response by reference, never copied.
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { Reader, Writer } from "../../kafka/protocol/wire.ts";
import type { ApiHandler, ResponseBody } from "../api.ts";
import type { PartitionFaults } from "../broker-faults.ts";
import type { BrokerState } from "../broker-state.ts";
import type { ReadResult } from "../log/partition-log.ts";

const READ_COMMITTED = 1;

interface FetchPartition {
  index: number;
  fetchOffset: number;
  maxBytes: number;
}

interface FetchTopic {
  name: string;
  partitions: FetchPartition[];
}

interface PartitionAnswer {
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  read: ReadResult;
}

interface FetchAnswer {
  /** One entry per requested partition, in request order (topic by topic). */
  partitions: PartitionAnswer[];
  sizeBytes: number;
  hasError: boolean;
}

const NO_DATA: ReadResult = { batches: [], sizeBytes: 0 };

function readTopics(req: Reader, version: number): FetchTopic[] {
  return req.array((t) => ({
    name: t.string(),
    partitions: t.array((p) => {
      const index = p.int32();
      if (version >= 9) p.int32(); // current leader epoch
      const fetchOffset = p.int64n();
      if (version >= 5) p.int64(); // follower log start offset
      const maxBytes = p.int32();
      return { index, fetchOffset, maxBytes };
    }),
  }));
}

/** Reads what is there now for every requested partition, within the byte limits. */
function collect(
  state: BrokerState,
  topics: readonly FetchTopic[],
  responseMaxBytes: number,
  injected: number | undefined,
): FetchAnswer {
  const partitions: PartitionAnswer[] = [];
  let sizeBytes = 0;
  let hasError = false;
  for (const topic of topics) {
    for (const p of topic.partitions) {
      const log = state.topics.partition(topic.name, p.index);
      let errorCode: number = ErrorCode.NONE;
      let read = NO_DATA;
      if (injected !== undefined) errorCode = injected;
      else if (log === undefined || log.closed) errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
      else if (p.fetchOffset < log.logStartOffset || p.fetchOffset > log.highWatermark) {
        errorCode = ErrorCode.OFFSET_OUT_OF_RANGE;
      } else if (sizeBytes === 0 || sizeBytes < responseMaxBytes) {
        // Only the first partition with data may exceed the limits, by one whole batch,
        // so that a batch bigger than every limit is still delivered.
        const limit = Math.min(p.maxBytes, responseMaxBytes - sizeBytes);
        read = log.read(p.fetchOffset, limit, sizeBytes === 0);
        sizeBytes += read.sizeBytes;
      }
      if (errorCode !== ErrorCode.NONE) hasError = true;
      const known = log !== undefined && !log.closed;
      partitions.push({
        errorCode,
        highWatermark: known ? log.highWatermark : -1,
        logStartOffset: known ? log.logStartOffset : -1,
        read,
      });
    }
  }
  return { partitions, sizeBytes, hasError };
}

function responseBody(
  version: number,
  isolationLevel: number,
  topics: readonly FetchTopic[],
  answer: FetchAnswer,
  faults?: PartitionFaults,
): ResponseBody {
  return (w: Writer) => {
    w.int32(0); // throttle time
    if (version >= 7) {
      w.int16(ErrorCode.NONE);
      w.int32(0); // session id: sessions are not supported, clients send full requests
    }
    let i = 0;
    w.array(topics, (w, topic) => {
      w.string(topic.name);
      w.array(topic.partitions, (w, p) => {
        const a = answer.partitions[i++] as PartitionAnswer;
        w.int32(faults ? faults.answerPartition(topic.name, p.index) : p.index);
        w.int16(a.errorCode);
        w.int64(a.highWatermark);
        w.int64(a.highWatermark); // last stable offset: no open transactions, ever
        if (version >= 5) w.int64(a.logStartOffset);
        // Aborted transactions: none; read-committed readers expect a list, others null.
        w.int32(isolationLevel === READ_COMMITTED ? 0 : -1);
        if (version >= 11) w.int32(-1); // preferred read replica
        w.int32(a.read.sizeBytes);
        for (const batch of a.read.batches) w.rawRef(batch);
      });
    });
  };
}

/** The Fetch handler. */
export function createFetchHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.Fetch,
    name: "Fetch",
    minVersion: 4,
    maxVersion: 11,
    firstFlexibleVersion: 12,
    handle(req, ctx) {
      const version = ctx.apiVersion;
      req.int32(); // replica id
      const maxWaitMs = req.int32();
      const minBytes = req.int32();
      const responseMaxBytes = req.int32();
      const isolationLevel = req.int8();
      if (version >= 7) {
        req.int32(); // session id
        req.int32(); // session epoch
      }
      const topics = readTopics(req, version);
      if (version >= 7) {
        req.array((t) => {
          t.string();
          t.array((p) => p.int32());
        }); // forgotten topics: meaningless without sessions
      }
      if (version >= 11) req.string(); // rack id

      const injected = ctx.injectedError;
      const first = collect(state, topics, responseMaxBytes, injected);
      const signal = ctx.signal;
      if (
        first.hasError ||
        first.sizeBytes >= minBytes ||
        maxWaitMs <= 0 ||
        signal?.aborted === true
      ) {
        return responseBody(version, isolationLevel, topics, first, ctx.partitionFaults);
      }

      return new Promise<ResponseBody>((resolve) => {
        const logs = topics.flatMap((t) =>
          t.partitions.flatMap((p) => state.topics.partition(t.name, p.index) ?? []),
        );
        let done = false;
        const finish = (): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          for (const log of logs) log.removeWaiter(onAppend);
          signal?.removeEventListener("abort", finish);
          resolve(
            responseBody(
              version,
              isolationLevel,
              topics,
              collect(state, topics, responseMaxBytes, injected),
              ctx.partitionFaults,
            ),
          );
        };
        const onAppend = (): void => {
          let available = 0;
          for (const topic of topics) {
            for (const p of topic.partitions) {
              const log = state.topics.partition(topic.name, p.index);
              // Gone, or retention passed the offset: answer now with the error.
              if (log === undefined || log.closed || p.fetchOffset < log.logStartOffset) {
                finish();
                return;
              }
              available += log.bytesFrom(p.fetchOffset);
            }
          }
          if (available >= minBytes) finish();
        };
        const timer = setTimeout(finish, maxWaitMs);
        for (const log of logs) log.addWaiter(onAppend);
        signal?.addEventListener("abort", finish, { once: true });
      });
    },
  };
}
