/**
 * Produce with an outcome per item: items are grouped by partition, each partition's batch
 * goes to its leader (one Produce per leader), and each batch is acknowledged, retried or
 * failed on its own: when a batch spans partitions, the items of a partition Kafka
 * acknowledged are told so even if another partition fails. Retries (leader moved, broker
 * restarting, connection lost, an answer that leaves the partition out) last until each
 * item's own deadline, bounded by the client's maximum; an item whose deadline passes is
 * dropped from later attempts and told why the last one failed.
 */
import type { CompressionCodec } from "../protocol/compression.ts";
import { KafkaAnswerError, KafkaProtocolError, kafkaCodeName } from "../protocol/errors.ts";
import type { OutgoingRecord } from "../protocol/record-codec.ts";
import { callApi } from "./apis/kafka-api.ts";
import {
  type ProducePartitionData,
  type ProducePartitionResult,
  produceApi,
} from "./apis/produce.ts";
import type { ClusterMetadata, PartitionInfo } from "./cluster-metadata.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import { backoff, isRetriable, sleep, withDeadline } from "./retry.ts";

/** The least time before its deadline that an item is still sent again. */
const lastAttemptMs = 100;

/** One unit of outcome: records written together to one partition. */
export interface ProduceItem {
  readonly topic: string;
  /** One record, or several that go to the first one's partition and share its outcome. */
  readonly records: OutgoingRecord | readonly OutgoingRecord[];
  /** When to stop retrying, ms since the epoch (the first attempt is always made). */
  readonly deadlineMs: number;
}

export interface ProduceHooks<T> {
  /** One item's outcome, as soon as it is known: `error` undefined means acknowledged. */
  settle(item: T, error: Error | undefined, index: number): void;
  /** The first attempt is over and some partitions wait for another. */
  retrying?(): void;
}

/** What producing needs from the cluster client. */
export interface ProduceContext {
  pool: ConnectionPool;
  metadata: ClusterMetadata;
  /** The longest any item is retried, whatever its deadline. */
  produceRetryMaxMs: number;
  /** The codec of the batches produced (default none). */
  compression?: CompressionCodec | undefined;
  choosePartition(topic: string, partitions: readonly PartitionInfo[], key: string | null): number;
}

/** One partition's share of the items, retried together. */
interface PartitionBatch extends ProducePartitionData {
  topic: string;
  partition: number;
  /** The items' indexes, in queue order, and their records in the same order. */
  indexes: number[];
  records: OutgoingRecord[];
  /** The latest deadline among its items. */
  deadlineMs: number;
  done: boolean;
  /** Why the last attempt failed. */
  error: Error | undefined;
}

/**
 * Writes `items` at `acks` and tells `hooks.settle` each item's outcome; resolves once every
 * item is settled and no request of this call is left in flight (so that records of the
 * same key sent later cannot overtake these).
 */
export async function produceItems<T extends ProduceItem>(
  ctx: ProduceContext,
  acks: -1 | 0 | 1,
  ackTimeoutMs: number,
  items: readonly T[],
  hooks: ProduceHooks<T>,
): Promise<void> {
  const run: ProduceRun<T> = {
    ctx,
    acks,
    ackTimeoutMs,
    items,
    hooks,
    maxDeadlineMs: Date.now() + ctx.produceRetryMaxMs,
    lingering: [],
  };
  let pending = await partitionBatches(run);
  for (let attempt = 0; pending.length > 0; attempt++) {
    await sendAttempt(run, pending);
    const now = Date.now();
    // Items with no time left for another attempt are told why the last one failed.
    const next: PartitionBatch[] = [];
    let wait = backoff(attempt);
    for (const batch of pending) {
      if (batch.done) continue;
      dropExpired(run, batch, now + lastAttemptMs);
      if (batch.done) continue;
      next.push(batch);
      // The backoff never skips a batch's last attempt before its deadline.
      wait = Math.min(wait, batch.deadlineMs - lastAttemptMs - now);
    }
    pending = next;
    if (pending.length === 0) break;
    if (attempt === 0) hooks.retrying?.();
    await sleep(Math.max(0, wait));
    await ctx.metadata.refresh([...new Set(pending.map((b) => b.topic))]).catch(() => {});
  }
  if (run.lingering.length > 0) await Promise.allSettled(run.lingering);
}

interface ProduceRun<T extends ProduceItem> {
  ctx: ProduceContext;
  acks: -1 | 0 | 1;
  ackTimeoutMs: number;
  items: readonly T[];
  hooks: ProduceHooks<T>;
  maxDeadlineMs: number;
  /** Requests given up on at their deadline but still unanswered. */
  lingering: Promise<unknown>[];
}

/** The items grouped by partition, in queue order; items of unknown topics are settled. */
async function partitionBatches<T extends ProduceItem>(
  run: ProduceRun<T>,
): Promise<PartitionBatch[]> {
  const { items, ctx } = run;
  const byTopic = new Map<string, PartitionBatch[]>();
  const batches: PartitionBatch[] = [];
  const failedTopics = new Map<string, Error>();
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as T;
    const topic = item.topic;
    const failed = failedTopics.get(topic);
    if (failed) {
      run.hooks.settle(item, failed, i);
      continue;
    }
    let partitions = ctx.metadata.cached(topic);
    if (!partitions) {
      try {
        partitions = await ctx.metadata.partitionsWithin(topic, topicDeadline(run, topic));
      } catch (error) {
        failedTopics.set(topic, error as Error);
        run.hooks.settle(item, error as Error, i);
        continue;
      }
    }
    const records = item.records;
    const first = (isRecordList(records) ? records[0] : records) as OutgoingRecord | undefined;
    const partition =
      first?.partition ?? ctx.choosePartition(topic, partitions, first?.key ?? null);
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions.length) {
      run.hooks.settle(
        item,
        new KafkaProtocolError(
          37, // INVALID_PARTITIONS
          `record for ${topic} names partition ${partition}, which the topic's ${partitions.length} partitions do not have`,
        ),
        i,
      );
      continue;
    }
    let list = byTopic.get(topic);
    if (!list) {
      list = [];
      byTopic.set(topic, list);
    }
    let batch = list[partition];
    if (!batch) {
      batch = {
        topic,
        partition,
        indexes: [],
        records: [],
        deadlineMs: 0,
        done: false,
        error: undefined,
      };
      list[partition] = batch;
      batches.push(batch);
    }
    batch.indexes.push(i);
    if (isRecordList(records)) for (const r of records) batch.records.push(r);
    else batch.records.push(records);
    const deadline = Math.min(item.deadlineMs, run.maxDeadlineMs);
    if (deadline > batch.deadlineMs) batch.deadlineMs = deadline;
  }
  return batches;
}

/** Whether an item's `records` are several (a list) rather than one. */
export function isRecordList<R>(records: R | readonly R[]): records is readonly R[] {
  return Array.isArray(records);
}

/** The latest deadline among the items of `topic`. */
function topicDeadline<T extends ProduceItem>(run: ProduceRun<T>, topic: string): number {
  let deadline = 0;
  for (const item of run.items) {
    if (item.topic === topic && item.deadlineMs > deadline) deadline = item.deadlineMs;
  }
  return Math.min(deadline, run.maxDeadlineMs);
}

/** One attempt: one Produce per leader for the batches not yet done. */
async function sendAttempt<T extends ProduceItem>(
  run: ProduceRun<T>,
  batches: readonly PartitionBatch[],
): Promise<void> {
  const byLeader = new Map<number, PartitionBatch[]>();
  for (const batch of batches) {
    const leader = run.ctx.metadata.leaderOf(batch.topic, batch.partition);
    if (leader < 0) {
      batch.error = new KafkaProtocolError(5, `${batch.topic}-${batch.partition}: no leader`);
      continue;
    }
    const list = byLeader.get(leader);
    if (list) list.push(batch);
    else byLeader.set(leader, [batch]);
  }
  if (byLeader.size === 1) {
    // The usual case (one leader): no array of promises to build.
    for (const [leader, list] of byLeader) await sendToLeader(run, leader, list);
    return;
  }
  await Promise.all([...byLeader].map(([leader, list]) => sendToLeader(run, leader, list)));
}

/** Sends one Produce to `leader` and settles or marks for retry each of its batches. */
async function sendToLeader<T extends ProduceItem>(
  run: ProduceRun<T>,
  leader: number,
  batches: PartitionBatch[],
): Promise<void> {
  let deadline = 0;
  for (const b of batches) if (b.deadlineMs > deadline) deadline = b.deadlineMs;
  const work = requestProduce(run, leader, batches);
  try {
    // Past its deadline a batch still gets its attempt, bounded by the request timeout.
    const results =
      deadline > Date.now()
        ? await withDeadline(work, deadline, `produce to broker ${leader}`)
        : await work;
    applyResults(run, batches, results, leader);
  } catch (error) {
    if (!isRetriable(error)) {
      for (const b of batches) finish(run, b, error as Error);
      return;
    }
    // Given up on at the deadline: the answer may still come, and must before anything
    // else of these keys is sent.
    run.lingering.push(work.catch(() => {}));
    for (const b of batches) b.error = error as Error;
  }
}

async function requestProduce<T extends ProduceItem>(
  run: ProduceRun<T>,
  leader: number,
  batches: PartitionBatch[],
): Promise<ProducePartitionResult[] | undefined> {
  const connection = await run.ctx.pool.connection(leader);
  const topics = new Map<string, PartitionBatch[]>();
  for (const b of batches) {
    const list = topics.get(b.topic);
    if (list) list.push(b);
    else topics.set(b.topic, [b]);
  }
  const request = {
    acks: run.acks,
    timeoutMs: run.ackTimeoutMs,
    timestamp: Date.now(),
    compression: run.ctx.compression,
    topics,
  };
  if (run.acks === 0) {
    const version = connection.version(
      produceApi.key,
      produceApi.minVersion,
      produceApi.maxVersion,
    );
    connection.send(
      produceApi.key,
      version,
      (w) => produceApi.writeRequest(w, version, request),
      produceApi.requestBytes?.(request),
    );
    return undefined;
  }
  return await callApi(connection, produceApi, request);
}

/** Settles or marks for retry each batch by its partition's answer. */
function applyResults<T extends ProduceItem>(
  run: ProduceRun<T>,
  batches: readonly PartitionBatch[],
  results: readonly ProducePartitionResult[] | undefined,
  leader: number,
): void {
  if (results === undefined) {
    // acks 0: written to the socket is all that can be known.
    for (const b of batches) finish(run, b, undefined);
    return;
  }
  for (const result of results) {
    const batch = batches.find((b) => b.partition === result.partition && b.topic === result.topic);
    if (!batch || batch.done) continue;
    if (result.error === 0) {
      finish(run, batch, undefined);
      continue;
    }
    const failure = new KafkaProtocolError(
      result.error,
      `produce to ${result.topic}-${result.partition} refused: ${kafkaCodeName(result.error)}${result.message ? ` (${result.message})` : ""}`,
    );
    if (failure.retriable) batch.error = failure;
    else finish(run, batch, failure);
  }
  for (const batch of batches) {
    if (
      batch.done ||
      results.some((r) => r.partition === batch.partition && r.topic === batch.topic)
    ) {
      continue;
    }
    batch.error = new KafkaAnswerError(
      `broker ${leader}: Produce answer leaves out ${batch.topic}-${batch.partition}, which was sent`,
    );
  }
}

/** Settles the items whose deadline comes before `stopAt`; the batch keeps the others. */
function dropExpired<T extends ProduceItem>(
  run: ProduceRun<T>,
  batch: PartitionBatch,
  stopAt: number,
): void {
  const error = batch.error ?? new KafkaAnswerError("produce not answered");
  if (batch.deadlineMs <= stopAt) {
    finish(run, batch, error);
    return;
  }
  let kept = 0;
  const records: OutgoingRecord[] = [];
  for (const index of batch.indexes) {
    const item = run.items[index] as T;
    if (Math.min(item.deadlineMs, run.maxDeadlineMs) <= stopAt) {
      run.hooks.settle(item, error, index);
      continue;
    }
    batch.indexes[kept++] = index;
    if (isRecordList(item.records)) for (const r of item.records) records.push(r);
    else records.push(item.records);
  }
  batch.indexes.length = kept;
  batch.records = records;
  let deadline = 0;
  for (const index of batch.indexes) {
    const d = Math.min((run.items[index] as T).deadlineMs, run.maxDeadlineMs);
    if (d > deadline) deadline = d;
  }
  batch.deadlineMs = deadline;
}

function finish<T extends ProduceItem>(
  run: ProduceRun<T>,
  batch: PartitionBatch,
  error: Error | undefined,
): void {
  if (batch.done) return;
  batch.done = true;
  for (const index of batch.indexes) run.hooks.settle(run.items[index] as T, error, index);
}
