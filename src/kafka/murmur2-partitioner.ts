/**
 * Kafka's default partitioner (docs/contract.md: Request records: every record of one call lands on one partition,
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
    const k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    h = Math.imul(h, m) ^ murmur2MixKey(k);
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
  return murmur2Finalize(h);
}

/** murmur2's state before the first block of a key of `length` bytes. */
export function murmur2Seed(length: number): number {
  return seed ^ length;
}

/** One little-endian 4-byte block of the key, mixed (independent of the state). */
export function murmur2MixKey(k: number): number {
  let x = Math.imul(k, m);
  x ^= x >>> 24;
  return Math.imul(x, m);
}

/** The state after one more block, given the block mixed by `murmur2MixKey`. */
export function murmur2Step(h: number, mixedKey: number): number {
  return Math.imul(h, m) ^ mixedKey;
}

/** The state after a tail of 1 to 3 bytes (`tail`: little-endian, as murmur2 reads them). */
export function murmur2Tail(h: number, tail: number): number {
  return Math.imul(h ^ tail, m);
}

/** The final avalanche: the signed 32-bit hash. */
export function murmur2Finalize(h: number): number {
  let x = h ^ (h >>> 13);
  x = Math.imul(x, m);
  x ^= x >>> 15;
  return x | 0;
}

/** Kafka's default partition of a key's bytes among `count` partitions. */
export function partitionOfKey(key: Uint8Array, count: number): number {
  return (murmur2(key) & 0x7fffffff) % count;
}
