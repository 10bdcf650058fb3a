/** OffsetFetch v1–v5: a group's committed offsets for the partitions asked for. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface OffsetFetchRequest {
  groupId: string;
  /** Per topic: the partitions asked for. */
  topics: readonly (readonly [string, readonly number[]])[];
}

export interface OffsetFetchPartition {
  topic: string;
  partition: number;
  /** The next offset to read; -1 when nothing is committed. */
  offset: number;
  error: number;
}

export interface OffsetFetchResponse {
  partitions: OffsetFetchPartition[];
  /** The error of the whole request (v2+; 0 before). */
  error: number;
}

export const offsetFetchApi: KafkaApi<OffsetFetchRequest, OffsetFetchResponse> = {
  key: ApiKey.OffsetFetch,
  name: "OffsetFetch",
  minVersion: 1,
  maxVersion: 5,
  writeRequest(w, _version, req) {
    w.string(req.groupId);
    w.array(req.topics, (w, [topic, list]) => w.string(topic).array(list, (w, p) => w.int32(p)));
  },
  readResponse(r, version) {
    if (version >= 3) r.int32(); // throttle
    const partitions: OffsetFetchPartition[] = [];
    const topics = r.int32();
    for (let t = 0; t < topics; t++) {
      const topic = r.string();
      const count = r.int32();
      for (let i = 0; i < count; i++) {
        const partition = r.int32();
        const offset = r.int64n();
        if (version >= 5) r.int32(); // leader epoch
        r.nullableString(); // metadata
        partitions.push({ topic, partition, offset, error: r.int16() });
      }
    }
    const error = version >= 2 ? r.int16() : 0;
    return { partitions, error };
  },
};
