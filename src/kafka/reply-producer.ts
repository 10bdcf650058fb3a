/**
 * West's reply producer (docs/contract.md: Reply records): records from all calls are gathered for one event-loop
 * turn and written with one produce (src/kafka/client/), each call's records learning their
 * own outcome (one partition's failure fails only the calls written to it). Batches overlap
 * when they share no key, so each call's records stay in order (a retried later batch can
 * never overtake an earlier one with the same call's records); gathering while batches are
 * in flight makes batches grow with load. A lone call pays no timer: its records go out on
 * the next turn.
 */
import { type Acks, acksToNumber } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import type { Kafka } from "./kafka-client.ts";
import { KeysInFlight } from "./keys-in-flight.ts";
import { approxRecordBytes, type ContractRecord } from "./record-contract.ts";

export interface ReplyProducer {
  /**
   * Queues one call's records (one key: they go to one partition) for `topic`; resolves
   * once Kafka acknowledged them. They are retried until `deadlineMs` (ms since the epoch;
   * default: none), at most the client's maximum.
   */
  send(topic: string, records: readonly ContractRecord[], deadlineMs?: number): Promise<void>;
  /** Waits for queued records, then disconnects. */
  close(): Promise<void>;
}

export interface BatchQueue<T> {
  /** Queues an item; resolves or rejects with its own outcome in the flush that carried it. */
  push(item: T): Promise<void>;
  /** Resolves once everything queued so far has been flushed. */
  drain(): Promise<void>;
}

/**
 * Writes a batch. `settle(i, error)` tells item i's outcome as soon as it is known; items
 * not settled when the returned promise settles share its outcome. `retrying()` says the
 * flush now only waits to try again: it stops counting against `maxInFlight`.
 */
export type BatchFlush<T> = (
  items: T[],
  settle: (index: number, error?: unknown) => void,
  retrying: () => void,
) => Promise<void>;

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
  settled: boolean;
  /** Its key counts as in flight. */
  keyHeld: boolean;
}

/**
 * How flushes may overlap: up to `maxInFlight` at once, taking no item whose key an item in
 * flight has (items of one key stay in push order; others go on). An item has one key (one
 * call's records).
 */
export interface BatchOrdering<T> {
  maxInFlight: number;
  keyOf(item: T): string;
}

/**
 * How large one flush may be: items are taken until the next would pass `maxBytes` (an item
 * larger than that goes alone). Kafka refuses a batch over its `message.max.bytes` however
 * small its records, so replies that each fit must not be written together past it.
 */
export interface BatchSize<T> {
  maxBytes: number;
  bytesOf(item: T): number;
}

/**
 * A queue that hands everything pushed during one turn to `flush`: one flush at a time, or
 * with `ordering` several, as long as no key is in two of them.
 */
export function createBatchQueue<T>(
  flush: BatchFlush<T>,
  maxItems = 1000,
  ordering?: BatchOrdering<T>,
  size?: BatchSize<T>,
): BatchQueue<T> {
  let pending: Pending<T>[] = [];
  let scheduled = false;
  /** Flushes holding a slot (not those waiting to be retried). */
  let inFlight = 0;
  /** Flushes not finished. */
  let running = 0;
  const maxInFlight = ordering ? Math.max(1, ordering.maxInFlight) : 1;
  const keysInFlight = new KeysInFlight();
  let idle: (() => void)[] = [];

  const blocked = (p: Pending<T>): boolean =>
    ordering !== undefined && keysInFlight.size > 0 && keysInFlight.has(ordering.keyOf(p.item));

  const holdKey = (p: Pending<T>, held: boolean) => {
    if (!ordering || p.keyHeld === held) return;
    p.keyHeld = held;
    if (held) keysInFlight.add(ordering.keyOf(p.item));
    else keysInFlight.remove(ordering.keyOf(p.item));
  };

  /**
   * Up to `maxItems` items whose keys are free, within `size`; the others stay queued, in
   * order. Once an item does not fit, nothing after it is taken (a later item of its key
   * must not overtake it).
   */
  const take = (): Pending<T>[] => {
    const batch: Pending<T>[] = [];
    const left: Pending<T>[] = [];
    let bytes = 0;
    let full = false;
    for (const p of pending) {
      if (!full && batch.length < maxItems && !blocked(p)) {
        const itemBytes = size ? size.bytesOf(p.item) : 0;
        if (size && batch.length > 0 && bytes + itemBytes > size.maxBytes) {
          full = true;
          left.push(p);
          continue;
        }
        bytes += itemBytes;
        batch.push(p);
      } else left.push(p);
    }
    pending = left;
    return batch;
  };

  /**
   * An item failed: the items of its keys still queued behind it fail with it rather than
   * leave after a gap (a call's later reply records, its end above all, must not be written
   * once an earlier one was lost). Items pushed from now on go out as usual.
   */
  const failQueuedAfter = (failed: Pending<T>, error: unknown) => {
    if (!ordering || pending.length === 0) return;
    const key = ordering.keyOf(failed.item);
    const left: Pending<T>[] = [];
    for (const p of pending) {
      if (ordering.keyOf(p.item) !== key) {
        left.push(p);
        continue;
      }
      p.settled = true;
      p.reject(error);
    }
    pending = left;
  };

  const scheduleRun = () => {
    if (scheduled || pending.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    setImmediate(run);
  };

  const start = (batch: Pending<T>[]) => {
    inFlight++;
    running++;
    for (const p of batch) holdKey(p, true);
    let slotHeld = true;
    const settle = (index: number, error?: unknown) => {
      const p = batch[index];
      if (!p || p.settled) return;
      p.settled = true;
      if (error !== undefined) {
        p.reject(error);
        failQueuedAfter(p, error);
        return;
      }
      holdKey(p, false);
      p.resolve();
      if (!slotHeld) scheduleRun();
    };
    const retrying = () => {
      if (!slotHeld) return;
      slotHeld = false;
      inFlight--;
      scheduleRun();
    };
    flush(
      batch.map((p) => p.item),
      settle,
      retrying,
    )
      .then(
        () => {
          for (let i = 0; i < batch.length; i++) settle(i);
        },
        (err: unknown) => {
          for (const p of batch) {
            if (p.settled) continue;
            p.settled = true;
            p.reject(err);
            failQueuedAfter(p, err);
          }
        },
      )
      .finally(() => {
        running--;
        if (slotHeld) inFlight--;
        for (const p of batch) holdKey(p, false);
        if (pending.length > 0) run();
        else if (running === 0) {
          const waiters = idle;
          idle = [];
          for (const w of waiters) w();
        }
      });
  };

  const run = () => {
    scheduled = false;
    while (pending.length > 0 && inFlight < maxInFlight) {
      const batch = take();
      if (batch.length === 0) break;
      start(batch);
    }
  };

  return {
    push(item) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject, settled: false, keyHeld: false });
        scheduleRun();
      });
    },
    drain() {
      if (running === 0 && !scheduled && pending.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}

/** One call's reply records for one topic: one item of outcome. */
interface ReplyItem {
  topic: string;
  records: readonly ContractRecord[];
  deadlineMs: number;
}

/**
 * Bytes of one partition's batch in one Produce, under Kafka's default limit (1 MB): west's
 * reply producer per flush, its changelog writer per partition.
 */
export const maxBatchBytes = 900 * 1024;

function replyItemBytes(item: ReplyItem): number {
  let bytes = 0;
  for (const record of item.records) bytes += approxRecordBytes(record);
  return bytes;
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

  const ackTimeoutMs = opts.ackTimeoutMs ?? 30_000;
  const queue = createBatchQueue<ReplyItem>(
    (items, settle, retrying) =>
      cluster.produceEach(acks, ackTimeoutMs, items, {
        settle: (_item, error, index) => settle(index, error),
        retrying,
      }),
    1000,
    // Replies of new calls need not wait for earlier calls' acknowledgements; one call's
    // records (one key) still leave one batch after the other.
    { maxInFlight: 4, keyOf: (item) => item.records[0]?.key ?? "" },
    { maxBytes: maxBatchBytes, bytesOf: replyItemBytes },
  );

  return {
    send(topic, records, deadlineMs = Number.POSITIVE_INFINITY) {
      return queue.push({ topic, records, deadlineMs });
    },
    async close() {
      await queue.drain();
      cluster.close();
    },
  };
}
