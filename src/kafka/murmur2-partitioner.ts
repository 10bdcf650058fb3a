/**
 * Kafka's default partitioner (SPEC §2: every record of one call lands on one partition,
 * the one Java clients pick for the same key): murmur2 of the key bytes, made positive,
 * modulo the partition count (KafkaCluster.choosePartition applies it). The same choices as
 * kafkajs' DefaultPartitioner, whose murmur2 does its
 * 32-bit arithmetic through 64-bit Long objects and was the costliest step of a produce.
 */

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
