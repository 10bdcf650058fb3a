/**
 * A consumer-group member for west (SPEC §6): kafkajs with auto-commit off, records handed
 * over one at a time in partition order, and offsets committed only when the caller says.
 * A record the caller refuses (it has no room for it now) pauses its partition: the record
 * and those after it are read again once the caller resumes the refused partitions.
 *
 * kafkajs sends heartbeats only between records, so a handler that waits (for a free call
 * slot) must call `keepAlive`; that is also where a rebalance shows up while consuming,
 * and the caller then gets `onRebalancing` before the member rejoins.
 */
import type { Consumer, IHeaders, KafkaMessage } from "kafkajs";
import type { Logger } from "../ops/logger.ts";
import type { Kafka } from "./kafka-client.ts";
import { headersFromKafka } from "./kafka-client.ts";
import type { RecordHeader } from "./record-contract.ts";

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A consumed record in the contract's terms (`value: null` is a tombstone). */
export interface ConsumedRecord extends TopicPartition {
  offset: bigint;
  key: string | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
  timestampMs: number;
}

/** The next offset to read, per partition. */
export interface CommitOffset extends TopicPartition {
  offset: bigint;
}

export interface GroupConsumerOptions {
  groupId: string;
  topics: string[];
  /**
   * Handles one record; consumption waits until it resolves. While it waits long it must
   * call `keepAlive`, which throws when the group is rebalancing (let that propagate).
   * Resolving `false` refuses the record: its partition pauses until `resumeRefused`.
   */
  onRecord(record: ConsumedRecord, keepAlive: () => Promise<void>): Promise<boolean | undefined>;
  /**
   * The group is rebalancing: commit what is safe. `canWait` says whether the member's
   * rejoin waits for the returned promise (it does when noticed while consuming).
   */
  onRebalancing(canWait: boolean): Promise<void>;
  /** The member's assignment after each join (possibly empty). */
  onAssignment(assignment: TopicPartition[]): void;
  logger: Logger;
  /** Where a group without committed offsets starts (default true: no request is lost). */
  fromBeginning?: boolean;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  maxWaitTimeMs?: number;
  /** Give up on the first join after this long (default 60 s). */
  joinTimeoutMs?: number;
}

export interface GroupConsumer {
  /** The current assignment. */
  assignment(): TopicPartition[];
  /** Commits the given next-to-read offsets under the current generation. */
  commit(offsets: readonly CommitOffset[]): Promise<void>;
  /** Stops handing out records (a record being handled finishes). */
  pause(): void;
  /** Partitions paused because a record was refused, in the order they were paused. */
  refused(): TopicPartition[];
  /** Reads the refused partitions again, from the refused record on. */
  resumeRefused(): void;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

/** Joins the group and resolves once the member has its first assignment. */
export async function startGroupConsumer(
  kafka: Kafka,
  opts: GroupConsumerOptions,
): Promise<GroupConsumer> {
  const consumer: Consumer = kafka.consumer({
    groupId: opts.groupId,
    sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
    heartbeatInterval: opts.heartbeatIntervalMs ?? 3_000,
    rebalanceTimeout: opts.rebalanceTimeoutMs ?? 60_000,
    maxWaitTimeInMs: opts.maxWaitTimeMs ?? 1_000,
    // The request topic may not exist before the first request; the broker decides.
    allowAutoTopicCreation: true,
  });
  let assignment: TopicPartition[] = [];
  let paused = false;
  let closed = false;
  // Partitions paused by a refused record, by "topic\0partition".
  const refused = new Map<string, TopicPartition>();
  const resumeRefused = () => {
    if (refused.size === 0 || paused || closed) return;
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of refused.values()) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    refused.clear();
    consumer.resume([...byTopic].map(([topic, partitions]) => ({ topic, partitions })));
  };

  let joined: (() => void) | undefined;
  let failed: ((err: unknown) => void) | undefined;
  const firstJoin = new Promise<void>((resolve, reject) => {
    joined = resolve;
    failed = reject;
  });

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const next: TopicPartition[] = [];
    for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
      for (const partition of partitions ?? []) next.push({ topic, partition });
    }
    assignment = next;
    // A new assignment starts from the committed offsets: nothing is held back any more.
    resumeRefused();
    opts.onAssignment(next);
    joined?.();
  });
  consumer.on(consumer.events.REBALANCING, () => {
    // kafkajs rejoins right after this event without waiting for listeners, so only a
    // commit of what is already done can go out (with the old generation) in time.
    opts.onRebalancing(false).catch(() => {});
  });
  consumer.on(consumer.events.CRASH, (event) => {
    opts.logger.error("kafka consumer crashed", {
      groupId: opts.groupId,
      error: event.payload.error,
      restart: event.payload.restart,
    });
    failed?.(event.payload.error);
  });

  await consumer.connect();
  await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const keepAlive = async () => {
        try {
          await heartbeat();
        } catch (err) {
          if (isRebalancing(err)) await opts.onRebalancing(true);
          throw err;
        }
      };
      for (const message of batch.messages) {
        if (paused || closed || !isRunning() || isStale()) return;
        const record = recordFromKafka(batch.topic, batch.partition, message);
        if ((await opts.onRecord(record, keepAlive)) === false) {
          // Not resolved: after the resume, kafkajs fetches again from this record.
          const tp = { topic: batch.topic, partition: batch.partition };
          refused.set(`${tp.topic}\0${tp.partition}`, tp);
          consumer.pause([{ topic: tp.topic, partitions: [tp.partition] }]);
          return;
        }
        // "Resolved" is kafkajs' fetch position only; commits are explicit.
        resolveOffset(message.offset);
        await keepAlive();
      }
    },
  });

  const timeoutMs = opts.joinTimeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      firstJoin,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`consumer group ${opts.groupId} got no assignment in time`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    await consumer.disconnect().catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }

  return {
    assignment: () => assignment,
    async commit(offsets) {
      if (offsets.length === 0 || closed) return;
      await consumer.commitOffsets(
        offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) })),
      );
    },
    pause() {
      paused = true;
      const topics = opts.topics.map((topic) => ({ topic }));
      consumer.pause(topics);
    },
    refused: () => [...refused.values()],
    resumeRefused,
    async close() {
      if (closed) return;
      closed = true;
      await consumer.disconnect();
    },
  };
}

/** A kafkajs message as a contract record. */
export function recordFromKafka(
  topic: string,
  partition: number,
  message: Pick<KafkaMessage, "offset" | "key" | "value" | "timestamp"> & { headers?: IHeaders },
): ConsumedRecord {
  const value = message.value;
  return {
    topic,
    partition,
    offset: BigInt(message.offset),
    key: message.key ? message.key.toString("utf8") : null,
    value: value ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : null,
    headers: headersFromKafka(message.headers),
    timestampMs: Number(message.timestamp),
  };
}

/** Whether kafkajs failed because the group is rebalancing (kafkajs' own test). */
export function isRebalancing(err: unknown): boolean {
  const type = (err as { type?: unknown } | null)?.type;
  return (
    type === "REBALANCE_IN_PROGRESS" ||
    type === "NOT_COORDINATOR_FOR_GROUP" ||
    type === "ILLEGAL_GENERATION"
  );
}
