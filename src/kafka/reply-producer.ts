/**
 * West's reply producer (SPEC §4): records from all calls are gathered for one event-loop
 * turn and written with one produce (src/kafka/client/). Batches overlap only when they share
 * no key, so each call's records stay in order (a retried later batch can never overtake an
 * earlier one with the same call's records); gathering while batches are in flight makes
 * batches grow with load. A lone call pays no timer: its records go out on the next turn.
 */
import { type Acks, acksToNumber } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import type { Kafka } from "./kafka-client.ts";
import { KeysInFlight } from "./keys-in-flight.ts";
import type { ContractRecord } from "./record-contract.ts";

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

/**
 * How flushes may overlap: up to `maxInFlight` at once, a new one only when none of its
 * items shares a key with an item in flight (items of one key stay in push order).
 */
export interface BatchOrdering<T> {
  maxInFlight: number;
  keysOf(item: T): Iterable<string>;
}

/**
 * A queue that hands everything pushed during one turn to `flush`: one flush at a time, or
 * with `ordering` several, as long as no key is in two of them.
 */
export function createBatchQueue<T>(
  flush: (items: T[]) => Promise<void>,
  maxItems = 1000,
  ordering?: BatchOrdering<T>,
): BatchQueue<T> {
  let pending: Pending<T>[] = [];
  let scheduled = false;
  let inFlight = 0;
  const maxInFlight = ordering ? Math.max(1, ordering.maxInFlight) : 1;
  const keysInFlight = new KeysInFlight();
  let idle: (() => void)[] = [];

  const mustWait = (): boolean => {
    if (inFlight === 0) return false;
    if (inFlight >= maxInFlight || !ordering) return true;
    for (const p of pending) {
      for (const key of ordering.keysOf(p.item)) if (keysInFlight.has(key)) return true;
    }
    return false;
  };

  const countKeys = (batch: Pending<T>[], inFlightNow: boolean) => {
    if (!ordering) return;
    for (const p of batch) {
      for (const key of ordering.keysOf(p.item)) {
        if (inFlightNow) keysInFlight.add(key);
        else keysInFlight.remove(key);
      }
    }
  };

  const run = () => {
    scheduled = false;
    while (pending.length > 0 && !mustWait()) {
      const batch = pending.slice(0, maxItems);
      pending = pending.slice(batch.length);
      inFlight++;
      countKeys(batch, true);
      flush(batch.map((p) => p.item))
        .then(
          () => {
            for (const p of batch) p.resolve();
          },
          (err: unknown) => {
            for (const p of batch) p.reject(err);
          },
        )
        .finally(() => {
          inFlight--;
          countKeys(batch, false);
          if (pending.length > 0) run();
          else if (inFlight === 0) {
            const waiters = idle;
            idle = [];
            for (const w of waiters) w();
          }
        });
    }
  };

  return {
    push(item) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        if (!scheduled && inFlight < maxInFlight) {
          scheduled = true;
          setImmediate(run);
        }
      });
    },
    drain() {
      if (inFlight === 0 && !scheduled && pending.length === 0) return Promise.resolve();
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
    1000,
    // Replies of new calls need not wait for earlier calls' acknowledgements; one call's
    // records (one key) still leave one batch after the other.
    { maxInFlight: 4, keysOf: (item) => item.records.map((r) => r.key ?? "") },
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
