/**
 * Writes changelog entries: entries of all calls are gathered for one event-loop turn (the
 * reply producer's batch queue), so at high concurrency they share Produce requests. Kafka
 * limits the bytes of one partition's batch (`max.message.bytes`, about 1 MB by default)
 * and a FINISHED entry may carry a reply of hundreds of KiB, so a turn's entries go out in
 * as many Produce requests as keep each partition's batch under `maxBatchBytes`, and a large
 * entry alone (its failure, e.g. MESSAGE_TOO_LARGE, is then its own).
 */
import { type Acks, acksToNumber } from "../config/types.ts";
import { KafkaCluster } from "../kafka/client/kafka-cluster.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import { type OutgoingRecord, valueBytes } from "../kafka/protocol/record-codec.ts";
import { createBatchQueue, maxBatchBytes } from "../kafka/reply-producer.ts";

export interface ChangelogWriter {
  /** Writes one entry; resolves once Kafka acknowledged it, rejects with the failure. */
  write(
    topic: string,
    partition: number,
    id: string,
    entry: Uint8Array | readonly Uint8Array[],
  ): Promise<void>;
  /** Waits for queued entries, then disconnects. */
  close(): Promise<void>;
}

interface Item {
  topic: string;
  record: OutgoingRecord;
  bytes: number;
}

/** Entries at least this large go alone. */
const aloneBytes = 256 * 1024;

/** Splits one turn's entries into Produce requests (see the file comment). */
export function chunkEntries<T extends { topic: string; record: OutgoingRecord; bytes: number }>(
  items: readonly T[],
  limitBytes = maxBatchBytes,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytesByPartition = new Map<string, number>();
  const close = () => {
    if (current.length > 0) chunks.push(current);
    current = [];
    bytesByPartition = new Map();
  };
  for (const item of items) {
    if (item.bytes >= aloneBytes) {
      chunks.push([item]);
      continue;
    }
    const key = `${item.topic}\0${item.record.partition}`;
    const bytes = bytesByPartition.get(key) ?? 0;
    if (bytes > 0 && bytes + item.bytes > limitBytes) close();
    current.push(item);
    bytesByPartition.set(key, (bytesByPartition.get(key) ?? 0) + item.bytes);
  }
  close();
  return chunks;
}

/** Connects a writer whose entries are acknowledged at `acks` (the binding's). */
export async function startChangelogWriter(
  kafka: Kafka,
  opts: { acks: Acks; ackTimeoutMs?: number },
): Promise<ChangelogWriter> {
  const cluster = new KafkaCluster(kafka.wire);
  try {
    await cluster.connect();
  } catch (error) {
    cluster.close();
    throw error;
  }
  const acks = acksToNumber(opts.acks);
  const queue = createBatchQueue<Item>(
    async (items) => {
      for (const chunk of chunkEntries(items)) {
        const byTopic = new Map<string, OutgoingRecord[]>();
        for (const { topic, record } of chunk) {
          const list = byTopic.get(topic);
          if (list) list.push(record);
          else byTopic.set(topic, [record]);
        }
        await cluster.produce(acks, opts.ackTimeoutMs ?? 30_000, byTopic);
      }
    },
    1000,
    // One call's entries (one key) leave in order; other calls' need not wait.
    { maxInFlight: 4, keyOf: (item) => item.record.key ?? "" },
  );
  return {
    write(topic, partition, id, entry) {
      const record: OutgoingRecord = { key: id, value: entry, headers: [], partition };
      return queue.push({ topic, record, bytes: valueBytes(entry) + id.length + 64 });
    },
    async close() {
      await queue.drain();
      cluster.close();
    },
  };
}
