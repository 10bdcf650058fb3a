/**
 * North's reply reader (SPEC §5): one kafkajs consumer per north instance that reads every
 * partition of every reply topic and hands each record to the call waiting for its
 * correlation id. The consumer group is private to the instance (`zilla-north-<uuid>`), so
 * it is assigned all partitions, and it is deleted on close. Before `startReplyReader`
 * resolves, each partition is positioned at the high watermark read after the group join:
 * every reply produced after that moment is read, so a call registered once the reader is
 * started cannot miss its reply.
 */
import { randomUUID } from "node:crypto";
import type { Admin, Consumer, EachBatchPayload, Kafka } from "kafkajs";
import type { Logger } from "../ops/logger.ts";
import { headersFromKafka } from "./kafka-client.ts";
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
  /** The consumer group id (private to this reader). */
  readonly groupId: string;
  /** Stops reading, fails remaining waiters, deletes the group. */
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
  /** Group id override (tests); default `zilla-north-<uuid>`. */
  groupId?: string;
  /** How often the read position is committed (default 5 s). */
  commitIntervalMs?: number;
}

/** Starts the reader and resolves once every partition of `topics` is positioned. */
export async function startReplyReader(options: ReplyReaderOptions): Promise<ReplyReader> {
  const { kafka, logger, topics, correlationIdHeader } = options;
  const groupId = options.groupId ?? `zilla-north-${randomUUID()}`;
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  // Usually one waiter per id; calls repeating an idempotency key share one id (SPEC §8.4).
  const waiters = new Map<string, ReplyWaiter[]>();
  let waiting = 0;
  // Last offset handed out per "topic\0partition": a rebalance may re-deliver records since
  // the last commit, and a streaming call must not see a reply message twice.
  const delivered = new Map<string, bigint>();
  let dropped = 0;
  let stopped = false;

  const admin: Admin = kafka.admin();
  await admin.connect();
  const consumer: Consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: true,
    maxWaitTimeInMs: options.maxWaitTimeInMs ?? 200,
    minBytes: 1,
    maxBytesPerPartition: Math.max(1024 * 1024, maxMessageBytes + 64 * 1024),
    maxBytes: Math.max(10 * 1024 * 1024, 2 * maxMessageBytes),
  });

  const failAll = (error: Error) => {
    const all = [...waiters.values()].flat();
    waiters.clear();
    waiting = 0;
    for (const w of all) w.onFailure(error);
  };

  const eachBatch = async ({ batch }: EachBatchPayload) => {
    const key = `${batch.topic}\0${batch.partition}`;
    const last = delivered.get(key) ?? -1n;
    let newest = last;
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (offset <= last) continue;
      newest = offset;
      const raw = message.headers?.[correlationIdHeader];
      const id = Array.isArray(raw) ? raw[0] : raw;
      const list = id === undefined ? undefined : waiters.get(id.toString());
      if (!list) {
        dropped++;
        continue;
      }
      const record: ReplyRecord = {
        topic: batch.topic,
        partition: batch.partition,
        offset: message.offset,
        value: message.value,
        headers: headersFromKafka(message.headers),
      };
      // A copy: a waiter may unregister itself while handling the record.
      for (const waiter of list.length === 1 ? list : [...list]) {
        try {
          waiter.onRecord(record);
        } catch (error) {
          // One call's failure must not stall the reader (and every other call with it).
          logger.error("reply dispatch failed", { groupId, error });
        }
      }
    }
    if (newest > last) delivered.set(key, newest);
  };

  try {
    await ensureTopics(admin, topics, logger);
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: false });
    // Records handed out before the seek were for nobody (no call could wait yet).
    await positionAtEnd(consumer, admin, topics, eachBatch, () => delivered.clear());
  } catch (error) {
    await consumer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    throw error;
  }

  // Commits only keep the position across a rebalance of this private group (records
  // re-read since the last commit are skipped by `delivered`), so they go out on a timer:
  // kafkajs' auto-commit would send one after every fetched batch, inside the fetch loop.
  let committing = false;
  const committed = new Map<string, bigint>();
  const commitTimer = setInterval(() => {
    if (committing || stopped) return;
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    for (const [key, last] of delivered) {
      if (committed.get(key) === last) continue;
      const [topic, partition] = key.split("\0") as [string, string];
      offsets.push({ topic, partition: Number(partition), offset: String(last + 1n) });
    }
    if (offsets.length === 0) return;
    committing = true;
    consumer
      .commitOffsets(offsets)
      .then(() => {
        for (const o of offsets) committed.set(`${o.topic}\0${o.partition}`, BigInt(o.offset) - 1n);
      })
      // A commit refused mid-rebalance is retried by the next tick.
      .catch((error: unknown) => logger.debug("reply reader commit failed", { groupId, error }))
      .finally(() => {
        committing = false;
      });
  }, options.commitIntervalMs ?? 5_000);
  commitTimer.unref?.();

  consumer.on(consumer.events.CRASH, (event) => {
    const { error, restart } = event.payload;
    logger.error("reply reader crashed", { groupId, error, restart });
    if (!restart) failAll(new Error(`reply reader stopped: ${error.message}`));
  });
  logger.debug("reply reader positioned", { groupId, topics });

  return {
    groupId,
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
      clearInterval(commitTimer);
      await consumer.disconnect().catch(() => {});
      failAll(new Error("reply reader is closed"));
      // A private group would otherwise stay on the broker until its offsets expire.
      await admin.deleteGroups([groupId]).catch((error: unknown) => {
        logger.debug("reply reader group not deleted", { groupId, error });
      });
      await admin.disconnect().catch(() => {});
    },
  };
}

/** Creates missing reply topics (broker defaults); falls back on auto-creation if refused. */
async function ensureTopics(admin: Admin, topics: string[], logger: Logger): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length === 0) return;
  try {
    await admin.createTopics({ topics: missing.map((topic) => ({ topic })), waitForLeaders: true });
  } catch (error) {
    // Metadata requests auto-create topics on brokers that allow it; fetchTopicOffsets asks.
    logger.debug("reply topics not created", { topics: missing, error });
  }
}

/**
 * Runs the consumer and, once the group is joined, seeks every partition to the high
 * watermark read after the join. kafkajs applies seeks before its next fetch and drops
 * in-flight fetch results for partitions with a pending seek, so no record at or past that
 * watermark is skipped, whatever position the consumer had resolved on its own.
 */
async function positionAtEnd(
  consumer: Consumer,
  admin: Admin,
  topics: string[],
  eachBatch: (payload: EachBatchPayload) => Promise<void>,
  beforeSeek: () => void,
): Promise<void> {
  let removeJoin = () => {};
  let removeCrash = () => {};
  const joined = new Promise<void>((resolve, reject) => {
    removeJoin = consumer.on(consumer.events.GROUP_JOIN, () => resolve());
    removeCrash = consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) reject(event.payload.error);
    });
  });
  try {
    await consumer.run({
      eachBatch,
      eachBatchAutoResolve: true,
      // Committed on a timer by the caller (see startReplyReader).
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
    });
    await joined;
  } finally {
    removeJoin();
    removeCrash();
  }
  const ends = await Promise.all(
    topics.map(async (topic) => ({
      topic,
      offsets: await admin.fetchTopicOffsets(topic),
    })),
  );
  beforeSeek();
  for (const { topic, offsets } of ends) {
    for (const { partition, high } of offsets) consumer.seek({ topic, partition, offset: high });
  }
}
