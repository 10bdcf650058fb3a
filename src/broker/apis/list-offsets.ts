/**
 * ListOffsets (v1-v5): earliest (-2) is the log start offset, latest (-1) the high
 * watermark, and a timestamp finds the first batch whose max timestamp is at or after it.
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { ApiHandler } from "../api.ts";
import type { BrokerState } from "../broker-state.ts";

const LATEST = -1;
const EARLIEST = -2;

interface PartitionAnswer {
  index: number;
  errorCode: number;
  timestamp: number;
  offset: number;
}

/** The ListOffsets handler. */
export function createListOffsetsHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.ListOffsets,
    name: "ListOffsets",
    minVersion: 1,
    maxVersion: 5,
    firstFlexibleVersion: 6,
    handle(req, ctx) {
      const version = ctx.apiVersion;
      req.int32(); // replica id
      if (version >= 2) req.int8(); // isolation level: LSO = HW here, so it changes nothing
      const topics = req.array((t) => ({
        name: t.string(),
        partitions: t.array((p) => {
          const index = p.int32();
          if (version >= 4) p.int32(); // current leader epoch
          return { index, timestamp: p.int64n() };
        }),
      }));
      const answers = topics.map((topic) => ({
        name: topic.name,
        partitions: topic.partitions.map(({ index, timestamp }): PartitionAnswer => {
          const fail = (errorCode: number): PartitionAnswer => ({
            index,
            errorCode,
            timestamp: -1,
            offset: -1,
          });
          if (ctx.injectedError !== undefined) return fail(ctx.injectedError);
          const refused = ctx.partitionFaults?.partitionError(topic.name, index);
          if (refused !== undefined) return fail(refused);
          const log = state.topics.partition(topic.name, index);
          if (log === undefined) return fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
          const ok = (offset: number, at: number): PartitionAnswer => ({
            index,
            errorCode: ErrorCode.NONE,
            timestamp: at,
            offset,
          });
          if (timestamp === LATEST) return ok(log.highWatermark, -1);
          if (timestamp === EARLIEST) return ok(log.logStartOffset, -1);
          if (timestamp < 0) return fail(ErrorCode.INVALID_REQUEST);
          const found = log.offsetForTimestamp(timestamp);
          // Kafka answers "no such record" with offset and timestamp -1 and no error.
          return found === null ? ok(-1, -1) : ok(found.offset, found.timestamp);
        }),
      }));
      return (w) => {
        if (version >= 2) w.int32(0); // throttle time
        w.array(answers, (w, topic) => {
          w.string(topic.name);
          w.array(topic.partitions, (w, p) => {
            const named = ctx.partitionFaults?.answerPartition(topic.name, p.index) ?? p.index;
            w.int32(named).int16(p.errorCode).int64(p.timestamp).int64(p.offset);
            if (version >= 4) w.int32(0); // leader epoch
          });
        });
      };
    },
  };
}
