/**
 * Produce v3–v8: record batches per partition, written in place into the request (no
 * batch is built apart and copied; large values go out by reference, straight from the
 * caller's arrays, which must not change until the request is written). With acks 0 the
 * broker sends no answer.
 */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { CompressionCodec } from "../../protocol/compression.ts";
import { batchBytes, type OutgoingRecord, writeBatch } from "../../protocol/record-codec.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface ProducePartitionData {
  partition: number;
  records: readonly OutgoingRecord[];
}

export interface ProduceRequest {
  acks: -1 | 0 | 1;
  /** How long the broker may wait for replicas before it answers. */
  timeoutMs: number;
  /** The records' create time. */
  timestamp: number;
  /** The codec of the batches (default none). */
  compression?: CompressionCodec | undefined;
  /** Per topic, its partitions' records. */
  topics: ReadonlyMap<string, readonly ProducePartitionData[]>;
}

export interface ProducePartitionResult {
  topic: string;
  partition: number;
  error: number;
  /** The broker's explanation (v8+), if it gave one. */
  message: string | null;
}

export const produceApi: KafkaApi<ProduceRequest, ProducePartitionResult[]> = {
  key: ApiKey.Produce,
  name: "Produce",
  minVersion: 3,
  maxVersion: 8,
  writeRequest(w, _version, req) {
    w.nullableString(null).int16(req.acks).int32(req.timeoutMs); // no transactional id
    w.int32(req.topics.size);
    for (const [topic, partitions] of req.topics) {
      w.string(topic);
      w.int32(partitions.length);
      for (const p of partitions) {
        w.int32(p.partition);
        const sizeAt = w.reserveInt32();
        const from = w.length;
        writeBatch(w, p.records, req.timestamp, req.compression, true);
        w.patchInt32(sizeAt, w.length - from);
      }
    }
  },
  requestBytes(req) {
    let bytes = 2 + 2 + 4 + 4; // transactional id, acks, timeout, topic count
    for (const [topic, partitions] of req.topics) {
      bytes += 2 + 3 * topic.length + 4;
      for (const p of partitions) bytes += 4 + 4 + batchBytes(p.records, true);
    }
    return bytes;
  },
  readResponse(r, version) {
    const out: ProducePartitionResult[] = [];
    const topics = r.int32();
    for (let t = 0; t < topics; t++) {
      const topic = r.string();
      const count = r.int32();
      for (let i = 0; i < count; i++) {
        const partition = r.int32();
        const error = r.int16();
        r.int64(); // base offset
        r.int64(); // log append time
        if (version >= 5) r.int64(); // log start offset
        let message: string | null = null;
        if (version >= 8) {
          r.array((r) => [r.int32(), r.nullableString()]); // record errors
          message = r.nullableString();
        }
        out.push({ topic, partition, error, message });
      }
    }
    return out;
  },
};
