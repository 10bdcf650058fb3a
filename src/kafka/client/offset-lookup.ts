/**
 * ListOffsets for one topic's partitions, each asked of its leader, retried until a
 * deadline: leader moves, lost connections and answers that break the protocol (a partition
 * not asked for, one left out) are retried, each failure told to `onRetry`.
 */
import { KafkaAnswerError, KafkaProtocolError, kafkaCodeName } from "../protocol/errors.ts";
import { callApi, checkAnsweredPartitions } from "./apis/kafka-api.ts";
import { listOffsetsApi } from "./apis/list-offsets.ts";
import type { ClusterMetadata } from "./cluster-metadata.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import { backoff, isRetriable, sleep } from "./retry.ts";

/** One partition's answer to ListOffsets. */
export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

export interface ListOffsetsOptions {
  /** When to stop retrying (ms since the epoch). */
  deadlineMs: number;
  /** Told each failure that is about to be retried. */
  onRetry?(error: Error, attempt: number): void;
}

/**
 * Brokers, per client, whose ListOffsets answer for several partitions broke the protocol:
 * they are asked one partition per request from then on. (librdkafka 2.0's mock cluster
 * garbles the answer when it leads two of the partitions asked; one at a time it answers
 * right.)
 */
const askOneAtATime = new WeakMap<ConnectionPool, Set<number>>();

/** The offset of `timestamp` (-1 latest, -2 earliest) for each partition, from its leader. */
export async function listOffsets(
  pool: ConnectionPool,
  metadata: ClusterMetadata,
  request: { topic: string; partitions: readonly number[]; timestamp: number },
  options: ListOffsetsOptions,
): Promise<PartitionOffset[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await listOffsetsOnce(pool, metadata, request);
    } catch (error) {
      const wait = backoff(attempt);
      if (!isRetriable(error) || pool.isClosed || Date.now() + wait >= options.deadlineMs) {
        throw error;
      }
      options.onRetry?.(error as Error, attempt);
      await sleep(wait);
      await metadata.refresh([request.topic]).catch(() => {});
    }
  }
}

async function listOffsetsOnce(
  pool: ConnectionPool,
  metadata: ClusterMetadata,
  {
    topic,
    partitions,
    timestamp,
  }: { topic: string; partitions: readonly number[]; timestamp: number },
): Promise<PartitionOffset[]> {
  const byLeader = new Map<number, number[]>();
  for (const p of partitions) {
    const leader = metadata.leaderOf(topic, p);
    if (leader < 0) throw new KafkaProtocolError(5, `${topic}-${p}: no leader`);
    const list = byLeader.get(leader);
    if (list) list.push(p);
    else byLeader.set(leader, [p]);
  }
  const answers = await Promise.all(
    [...byLeader].map(async ([leader, list]) => {
      const connection = await pool.connection(leader);
      const single = askOneAtATime.get(pool)?.has(leader) ?? false;
      const requests = single ? list.map((p) => [p]) : [list];
      const answers = [];
      for (const asked of requests) {
        const answer = await callApi(connection, listOffsetsApi, {
          topic,
          partitions: asked,
          timestamp,
        });
        try {
          checkAnsweredPartitions(
            "ListOffsets",
            connection.address,
            new Map([[topic, asked]]),
            answer,
            true,
          );
        } catch (error) {
          if (error instanceof KafkaAnswerError && asked.length > 1) {
            let brokers = askOneAtATime.get(pool);
            if (!brokers) {
              brokers = new Set();
              askOneAtATime.set(pool, brokers);
            }
            brokers.add(leader);
          }
          throw error;
        }
        answers.push(...answer);
      }
      return answers;
    }),
  );
  const out: PartitionOffset[] = [];
  for (const answer of answers) {
    for (const p of answer) {
      if (p.error !== 0) {
        throw new KafkaProtocolError(
          p.error,
          `offsets of ${p.topic}-${p.partition}: ${kafkaCodeName(p.error)}`,
        );
      }
      out.push({ topic: p.topic, partition: p.partition, offset: p.offset });
    }
  }
  return out;
}
