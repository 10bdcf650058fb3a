/**
 * West's reply producer (SPEC §4): records from all calls are gathered for one event-loop
 * turn and written with one produce (src/kafka/wire/), one batch in flight at a time. One batch at a time
 * keeps each call's records in order (a retried later batch can never overtake an earlier
 * one); gathering while a batch is in flight makes batches grow with load, so throughput
 * does not suffer. A lone call pays no timer: its records go out on the next turn.
 */
import { type Acks, acksToNumber } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import type { Kafka } from "./kafka-client.ts";
import type { ContractRecord } from "./record-contract.ts";
import { KafkaCluster } from "./wire/kafka-cluster.ts";

export interface ReplyProducer {
  /** Queues records for `topic`; resolves once Kafka acknowledged the batch they went in. */
  send(topic: string, records: readonly ContractRecord[]): Promise<void>;
  /** Waits for queued records, then disconnects. */
  close(): Promise<void>;
}

export interface BatchQueue<T> {
  /** Queues an item; resolves or rejects with the flush that carried it. */
  push(item: T): Promise<void>;
  /** Resolves once everything queued so far has been flushed. */
  drain(): Promise<void>;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A queue that hands everything pushed during one turn to `flush`, one flush at a time. */
export function createBatchQueue<T>(
  flush: (items: T[]) => Promise<void>,
  maxItems = 1000,
): BatchQueue<T> {
  let pending: Pending<T>[] = [];
  let scheduled = false;
  let flushing = false;
  let idle: (() => void)[] = [];

  const run = async () => {
    scheduled = false;
    flushing = true;
    while (pending.length > 0) {
      const batch = pending.slice(0, maxItems);
      pending = pending.slice(batch.length);
      try {
        await flush(batch.map((p) => p.item));
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    flushing = false;
    const waiters = idle;
    idle = [];
    for (const w of waiters) w();
  };

  return {
    push(item) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        if (!flushing && !scheduled) {
          scheduled = true;
          setImmediate(run);
        }
      });
    },
    drain() {
      if (!flushing && !scheduled && pending.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}

/** Connects a producer for replies written with `acks`. */
export async function startReplyProducer(
  kafka: Kafka,
  opts: { acks: Acks; logger: Logger; ackTimeoutMs?: number },
): Promise<ReplyProducer> {
  const cluster = new KafkaCluster(kafka.wire);
  try {
    await cluster.connect();
  } catch (error) {
    cluster.close();
    throw error;
  }
  const acks = acksToNumber(opts.acks);

  const queue = createBatchQueue<{ topic: string; records: readonly ContractRecord[] }>(
    async (items) => {
      const byTopic = new Map<string, ContractRecord[]>();
      for (const { topic, records } of items) {
        const list = byTopic.get(topic);
        if (list) list.push(...records);
        else byTopic.set(topic, [...records]);
      }
      await cluster.produce(acks, opts.ackTimeoutMs ?? 30_000, byTopic);
    },
  );

  return {
    send(topic, records) {
      return queue.push({ topic, records });
    },
    async close() {
      await queue.drain();
      cluster.close();
    },
  };
}
