/**
 * Kafka's default partitioner (SPEC §2: every record of one call lands on one partition,
 * the one Java clients pick for the same key): murmur2 of the key bytes, made positive,
 * modulo the partition count; records without a key go round-robin over partitions that
 * have a leader. The same choices as kafkajs' DefaultPartitioner, whose murmur2 does its
 * 32-bit arithmetic through 64-bit Long objects and was the costliest step of a produce.
 */
import { randomInt } from "node:crypto";
import type { ICustomPartitioner, PartitionerArgs } from "kafkajs";

const seed = 0x9747b28c;
const m = 0x5bd1e995;

/** Java Kafka's `Utils.murmur2` of `data` (a signed 32-bit result). */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = seed ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  switch (length & 3) {
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: murmur2 mixes the tail bytes cumulatively.
    case 3:
      h ^= (data[tail + 2] as number) << 16;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: as above.
    case 2:
      h ^= (data[tail + 1] as number) << 8;
    case 1:
      h ^= data[tail] as number;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();

/** The bytes kafkajs writes for a key: Buffers as they are, anything else as UTF-8 text. */
function keyBytes(key: Buffer | string): Uint8Array {
  return typeof key === "string" ? encoder.encode(key) : key;
}

/** A kafkajs partitioner choosing partitions exactly as kafkajs' (and Java's) default does. */
export const createPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const numPartitions = partitionMetadata.length;
    if (message.key !== null && message.key !== undefined) {
      return (murmur2(keyBytes(message.key)) & 0x7fffffff) % numPartitions;
    }
    const next = ((counters.get(topic) ?? randomInt(2 ** 31)) + 1) | 0;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length === 0) return (next & 0x7fffffff) % numPartitions;
    return (available[(next & 0x7fffffff) % available.length] as (typeof available)[number])
      .partitionId;
  };
};
