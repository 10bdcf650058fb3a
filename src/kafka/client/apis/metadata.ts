/**
 * Metadata v1–v8: the brokers, the controller and, per topic asked for, its partitions and
 * their leaders. Asking for no topics gets the brokers only.
 */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface MetadataRequest {
  topics: readonly string[];
  /** Let the broker create topics it does not know (where it allows that). */
  allowAutoCreate: boolean;
}

export interface MetadataBroker {
  node: number;
  host: string;
  port: number;
}

export interface MetadataPartition {
  error: number;
  partition: number;
  /** Node id of the leader; -1 while there is none. */
  leader: number;
  leaderEpoch: number;
}

export interface MetadataTopic {
  error: number;
  name: string;
  partitions: MetadataPartition[];
}

export interface MetadataResponse {
  brokers: MetadataBroker[];
  controller: number;
  topics: MetadataTopic[];
}

export const metadataApi: KafkaApi<MetadataRequest, MetadataResponse> = {
  key: ApiKey.Metadata,
  name: "Metadata",
  minVersion: 1,
  maxVersion: 8,
  writeRequest(w, version, { topics, allowAutoCreate }) {
    w.array(topics, (w, t) => w.string(t));
    if (version >= 4) w.bool(allowAutoCreate);
    if (version >= 8) w.bool(false).bool(false); // no authorized operations
  },
  readResponse(r, version) {
    if (version >= 3) r.int32(); // throttle
    const brokers = r.array((r) => {
      const node = r.int32();
      const host = r.string();
      const port = r.int32();
      r.nullableString(); // rack
      return { node, host, port };
    });
    if (version >= 2) r.nullableString(); // cluster id
    const controller = r.int32();
    const topics = r.array((r): MetadataTopic => {
      const error = r.int16();
      const name = r.string();
      r.bool(); // internal
      const partitions = r.array((r): MetadataPartition => {
        const error = r.int16();
        const partition = r.int32();
        const leader = r.int32();
        const leaderEpoch = version >= 7 ? r.int32() : -1;
        r.array((r) => r.int32()); // replicas
        r.array((r) => r.int32()); // in-sync replicas
        if (version >= 5) r.array((r) => r.int32()); // offline replicas
        return { error, partition, leader, leaderEpoch };
      });
      if (version >= 8) r.int32(); // authorized operations
      return { error, name, partitions };
    });
    return { brokers, controller, topics };
  },
};
