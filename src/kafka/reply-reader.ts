/**
 * North's reply reader (SPEC §5): one reader per north instance that reads every partition
 * of every reply topic and hands each record to the call waiting for its correlation id.
 * It reads assigned partitions with the gateway's own client (src/kafka/client/), no consumer
 * group: every instance must see every partition, so a group would only add joins,
 * rebalances and a group to delete. Before `startReplyReader` resolves, each partition is
 * positioned at its end (ListOffsets): every reply produced after that moment is read, so a
 * call registered once the reader is started cannot miss its reply.
 */
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import { startPartitionReader } from "./client/partition-reader.ts";
import type { Kafka } from "./kafka-client.ts";
import type { RecordHeader } from "./record-contract.ts";

/** One reply record as a waiter sees it; `value: null` is the end tombstone. */
export interface ReplyRecord {
  topic: string;
  partition: number;
  offset: string;
  value: Uint8Array | null;
  headers: RecordHeader[];
}

/** The call waiting for one correlation id. */
export interface ReplyWaiter {
  onRecord(record: ReplyRecord): void;
  /** The reader stopped for good; the call cannot get its reply. */
  onFailure(error: Error): void;
}

export interface ReplyReader {
  /** Routes records with this correlation id to `waiter` until the returned function runs. */
  register(correlationId: string, waiter: ReplyWaiter): () => void;
  /** Calls waiting now. */
  readonly waiting: number;
  /** Records read whose correlation id nobody waited for. */
  readonly dropped: number;
  /** Stops reading and fails remaining waiters. */
  close(): Promise<void>;
}

export interface ReplyReaderOptions {
  kafka: Kafka;
  logger: Logger;
  topics: string[];
  /** The reply header carrying the correlation id (`options.correlation.headers`). */
  correlationIdHeader: string;
  /** Longest time the broker may hold a fetch with nothing to return. */
  maxWaitTimeInMs?: number;
  /** Largest reply message expected, bytes (fetch sizes follow it). */
  maxMessageBytes?: number;
}

/** Starts the reader and resolves once every partition of `topics` is positioned. */
export async function startReplyReader(options: ReplyReaderOptions): Promise<ReplyReader> {
  const { kafka, logger, topics, correlationIdHeader } = options;
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  // Usually one waiter per id; calls repeating an idempotency key share one id (SPEC §8.4).
  const waiters = new Map<string, ReplyWaiter[]>();
  let waiting = 0;
  let dropped = 0;
  let stopped = false;

  const failAll = (error: Error) => {
    const all = [...waiters.values()].flat();
    waiters.clear();
    waiting = 0;
    for (const w of all) w.onFailure(error);
  };

  const cluster = new KafkaCluster(kafka.wire);
  let reader: { stop(): void } | undefined;
  try {
    // Missing reply topics are created with the broker's defaults; where that is refused,
    // brokers that auto-create topics still make them on the reader's metadata request.
    await cluster
      .createTopics(topics)
      .catch((error: unknown) => logger.debug("reply topics not created", { topics, error }));
    reader = await startPartitionReader({
      cluster,
      topics,
      start: "latest",
      maxWaitMs: options.maxWaitTimeInMs ?? 200,
      partitionMaxBytes: Math.max(1024 * 1024, maxMessageBytes + 64 * 1024),
      maxBytes: Math.max(10 * 1024 * 1024, 2 * maxMessageBytes),
      onProblem: (message, error) => logger.warn(`reply reader: ${message}`, { error }),
      // A held reply partition delivers no more replies: calls waiting on it reach their deadline.
      ...(kafka.undecodable
        ? { undecodable: kafka.undecodable.reporter("north reply reader") }
        : {}),
      onRecords(topic, partition, records) {
        for (const record of records) {
          let id: string | undefined;
          for (const [name, value] of record.headers) {
            if (name === correlationIdHeader) {
              id = value;
              break;
            }
          }
          const list = id === undefined ? undefined : waiters.get(id);
          if (!list) {
            dropped++;
            continue;
          }
          const reply: ReplyRecord = {
            topic,
            partition,
            offset: String(record.offset),
            value: record.value,
            headers: record.headers,
          };
          // A copy: a waiter may unregister itself while handling the record.
          for (const waiter of list.length === 1 ? list : [...list]) {
            try {
              waiter.onRecord(reply);
            } catch (error) {
              // One call's failure must not stall the reader (and every other call with it).
              logger.error("reply dispatch failed", { error });
            }
          }
        }
      },
    });
  } catch (error) {
    cluster.close();
    throw error;
  }
  logger.debug("reply reader positioned", { topics });

  return {
    get waiting() {
      return waiting;
    },
    get dropped() {
      return dropped;
    },
    register(correlationId, waiter) {
      if (stopped) {
        queueMicrotask(() => waiter.onFailure(new Error("reply reader is closed")));
        return () => {};
      }
      const list = waiters.get(correlationId);
      if (list) list.push(waiter);
      else waiters.set(correlationId, [waiter]);
      waiting++;
      let registered = true;
      return () => {
        if (!registered) return;
        registered = false;
        const current = waiters.get(correlationId);
        const index = current?.indexOf(waiter) ?? -1;
        if (!current || index < 0) return;
        waiting--;
        if (current.length === 1) waiters.delete(correlationId);
        else current.splice(index, 1);
      };
    },
    async close() {
      if (stopped) return;
      stopped = true;
      reader?.stop();
      cluster.close();
      failAll(new Error("reply reader is closed"));
    },
  };
}
