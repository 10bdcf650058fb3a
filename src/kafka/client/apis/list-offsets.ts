/** ListOffsets v1–v5: the offset of a timestamp (-1 latest, -2 earliest) per partition. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface ListOffsetsRequest {
  topic: string;
  partitions: readonly number[];
  timestamp: number;
}

export interface ListOffsetsPartition {
  topic: string;
  partition: number;
  error: number;
  timestamp: number;
  offset: number;
}

export const listOffsetsApi: KafkaApi<ListOffsetsRequest, ListOffsetsPartition[]> = {
  key: ApiKey.ListOffsets,
  name: "ListOffsets",
  minVersion: 1,
  maxVersion: 5,
  writeRequest(w, version, { topic, partitions, timestamp }) {
    w.int32(-1); // replica id: a client
    if (version >= 2) w.int8(0); // read uncommitted
    w.array([topic], (w, t) => {
      w.string(t);
      w.array(partitions, (w, p) => {
        w.int32(p);
        if (version >= 4) w.int32(-1); // current leader epoch: unknown
        w.int64(timestamp);
      });
    });
  },
  readResponse(r, version) {
    if (version >= 2) r.int32(); // throttle
    const out: ListOffsetsPartition[] = [];
    const topics = r.int32();
    for (let t = 0; t < topics; t++) {
      const topic = r.string();
      const count = r.int32();
      for (let i = 0; i < count; i++) {
        const partition = r.int32();
        const error = r.int16();
        const timestamp = r.int64n();
        const offset = r.int64n();
        if (version >= 4) r.int32(); // leader epoch
        out.push({ topic, partition, error, timestamp, offset });
      }
    }
    return out;
  },
};
