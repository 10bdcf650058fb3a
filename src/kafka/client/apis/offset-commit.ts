/** OffsetCommit v2–v7: a member commits next-to-read offsets under its generation. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface OffsetCommitRequest {
  groupId: string;
  generation: number;
  memberId: string;
  /** Per topic: partition and next offset to read. */
  topics: readonly (readonly [string, readonly { partition: number; offset: bigint }[]])[];
}

export interface OffsetCommitPartition {
  topic: string;
  partition: number;
  error: number;
}

export const offsetCommitApi: KafkaApi<OffsetCommitRequest, OffsetCommitPartition[]> = {
  key: ApiKey.OffsetCommit,
  name: "OffsetCommit",
  minVersion: 2,
  maxVersion: 7,
  writeRequest(w, version, req) {
    w.string(req.groupId).int32(req.generation).string(req.memberId);
    if (version >= 7) w.nullableString(null); // group instance id
    if (version <= 4) w.int64(-1); // retention: the broker's default
    w.array(req.topics, (w, [topic, list]) => {
      w.string(topic).array(list, (w, o) => {
        w.int32(o.partition).int64(o.offset);
        if (version >= 6) w.int32(-1); // leader epoch
        w.nullableString(null); // metadata
      });
    });
  },
  readResponse(r, version) {
    if (version >= 3) r.int32(); // throttle
    const out: OffsetCommitPartition[] = [];
    const topics = r.int32();
    for (let t = 0; t < topics; t++) {
      const topic = r.string();
      const count = r.int32();
      for (let i = 0; i < count; i++) out.push({ topic, partition: r.int32(), error: r.int16() });
    }
    return out;
  },
};
