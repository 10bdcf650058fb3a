/**
 * North's reply reader (docs/contract.md: North): reads reply topics and hands each record to the call waiting
 * for its correlation id. With `partitions: "all"` (the default) it reads every partition of
 * every reply topic, as Zilla does. With a share of the partitions (`group` or a fixed list,
 * docs/scaling.md) it reads what it owns plus, for as long as they wait, the partitions of
 * calls whose ids it could not place there (idempotency keys fix the id), and new correlation
 * ids are placed on owned partitions (`uuidChooser`). Partitions are read with the gateway's
 * own client (src/kafka/client/); the consumer group, when there is one, only hands out
 * ownership: nothing is committed and its member never fetches. Before `startReplyReader`
 * resolves, every partition's end offset is known and what is owned is being read from there:
 * every reply produced after that moment is read, so a call registered once the reader is
 * started cannot miss its reply (reply-partition-set.ts has the rule for what changes later).
 */
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import { startPartitionReader } from "./client/partition-reader.ts";
import { type GroupConsumer, startGroupConsumer } from "./group-consumer.ts";
import { STATUS } from "./header-names.ts";
import type { Kafka } from "./kafka-client.ts";
import type { RecordHeader } from "./record-contract.ts";
import {
  type ReplyPartitionSet,
  type ReplyPartitionStats,
  startReplyPartitionSet,
} from "./reply-partition-set.ts";
import type { ReplyPartitions } from "./reply-partitions.ts";

const replyRepeatedValues: ReadonlySet<string> = new Set([STATUS]);

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
  /**
   * Routes records with this correlation id to `waiter` until the returned function runs;
   * the id's partition of `topic` (default: the first reply topic) is read meanwhile.
   */
  register(correlationId: string, waiter: ReplyWaiter, topic?: string): () => void;
  /**
   * `register` without a function per call, for the hot path: returns a ticket that
   * `stopWaiting` takes, once, with the same id, waiter and topic.
   */
  waitFor(correlationId: string, waiter: ReplyWaiter, topic?: string): number;
  /** Ends a `waitFor`. */
  stopWaiting(
    correlationId: string,
    waiter: ReplyWaiter,
    topic: string | undefined,
    ticket: number,
  ): void;
  /**
   * Draws the UUID part of new correlation ids on `topic` so that their replies land on a
   * partition this reader owns (the contract leaves it free: docs/contract.md, The correlation id); undefined when any UUID does.
   */
  uuidChooser(topic: string): ((digest: string) => string) | undefined;
  /** Calls waiting now. */
  readonly waiting: number;
  /** Records read whose correlation id nobody waited for. */
  readonly dropped: number;
  /** Reply records read (fetched), whoever waited for them. */
  readonly recordsRead: number;
  /** Partitions read and owned now, per topic. */
  partitions(): ReplyPartitionStats[];
  /**
   * Gives up ownership (leaves the group) for others to take over; calls still waiting keep
   * their partitions read until they end. For the start of a drain.
   */
  release(): Promise<void>;
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
  /** Which partitions this instance owns (default all). */
  partitions?: ReplyPartitions;
  /** The consumer group that shares partitions out (required with `partitions: "group"`). */
  groupId?: string;
  /** How long every partition is read after a reply topic gained partitions (default 10 min). */
  partitionGraceMs?: number;
  /** How often end offsets and partition counts are read (default 5 s). */
  partitionCheckMs?: number;
  /** How long a partition nobody needs any more is still read (default 2 s). */
  partitionLingerMs?: number;
}

/** Who owns which reply partitions, and how often that is looked at. */
export type ReplyOwnershipOptions = Pick<
  ReplyReaderOptions,
  "partitions" | "groupId" | "partitionGraceMs" | "partitionCheckMs" | "partitionLingerMs"
>;

const encoder = new TextEncoder();

/** What `waitFor` returns when the reader was closed: nothing to release. */
export const noTicket = -2;

/** Starts the reader; resolves once what it owns is positioned (and the group joined). */
export async function startReplyReader(options: ReplyReaderOptions): Promise<ReplyReader> {
  const { kafka, logger, topics, correlationIdHeader } = options;
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const ownership = options.partitions ?? "all";
  const defaultTopic = topics[0] ?? "";
  // Usually one waiter per id, kept as is (no array per pending call); calls repeating an
  // idempotency key share one id (docs/contract.md: difference 4) and then share an array.
  const waiters = new Map<string, ReplyWaiter | ReplyWaiter[]>();
  let waiting = 0;
  let dropped = 0;
  let recordsRead = 0;
  let stopped = false;

  const deliver = (waiter: ReplyWaiter, reply: ReplyRecord) => {
    try {
      waiter.onRecord(reply);
    } catch (error) {
      // One call's failure must not stall the reader (and every other call with it).
      logger.error("reply dispatch failed", { error });
    }
  };

  const failAll = (error: Error) => {
    const all = [...waiters.values()].flat() as ReplyWaiter[];
    waiters.clear();
    waiting = 0;
    for (const w of all) w.onFailure(error);
  };

  const cluster = new KafkaCluster(kafka.wire);
  let reader: { stop(): void } | undefined;
  let set: ReplyPartitionSet | undefined;
  let group: GroupConsumer | undefined;
  let rejoin = (): void => {};
  try {
    // Missing reply topics are created with the broker's defaults; where that is refused,
    // brokers that auto-create topics still make them on the reader's metadata request.
    await cluster
      .createTopics(topics)
      .catch((error: unknown) => logger.debug("reply topics not created", { topics, error }));
    const partitionReader = await startPartitionReader({
      cluster,
      topics,
      // Partitions come and go as the set decides.
      assigned: [],
      start: "latest",
      maxWaitMs: options.maxWaitTimeInMs ?? 200,
      partitionMaxBytes: Math.max(1024 * 1024, maxMessageBytes + 64 * 1024),
      maxBytes: Math.max(10 * 1024 * 1024, 2 * maxMessageBytes),
      onProblem: (message, error) => logger.warn(`reply reader: ${message}`, { error }),
      // An end record's status is one of a few values: the same strings each time.
      repeatedValues: replyRepeatedValues,
      // A held reply partition delivers no more replies: calls waiting on it reach their deadline.
      ...(kafka.undecodable
        ? { undecodable: kafka.undecodable.reporter("north reply reader") }
        : {}),
      onRecords(topic, partition, records) {
        recordsRead += records.length;
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
          if (!Array.isArray(list)) deliver(list, reply);
          // A copy: a waiter may unregister itself while handling the record.
          else for (const waiter of [...list]) deliver(waiter, reply);
        }
      },
    });
    reader = partitionReader;
    const partitionSet = await startReplyPartitionSet({
      cluster,
      reader: partitionReader,
      topics,
      logger,
      mode: ownership === "all" ? "all" : "owned",
      onGrown: () => rejoin(),
      ...(options.partitionGraceMs !== undefined ? { graceMs: options.partitionGraceMs } : {}),
      ...(options.partitionCheckMs !== undefined ? { checkMs: options.partitionCheckMs } : {}),
      ...(options.partitionLingerMs !== undefined ? { lingerMs: options.partitionLingerMs } : {}),
    });
    set = partitionSet;
    if (ownership === "group") {
      group = await joinOwnershipGroup(kafka, options.groupId, topics, partitionSet, logger);
    } else if (ownership !== "all") {
      for (const topic of topics) partitionSet.setOwned(topic, ownership);
    }
  } catch (error) {
    set?.close();
    reader?.stop();
    cluster.close();
    throw error;
  }
  const partitionSet = set;
  const tracked = ownership !== "all";
  logger.debug("reply reader positioned", { topics, partitions: partitionSet.stats() });

  let released: Promise<void> | undefined;
  let rejoining: Promise<void> | undefined;
  // The group's leader hands out only the partitions it knows of at a rebalance: joining
  // again makes one, so partitions a topic gained get owners (the others read them meanwhile).
  rejoin = () => {
    if (!group || released || rejoining || stopped) return;
    const previous = group;
    rejoining = (async () => {
      await previous.close();
      if (released || stopped) return;
      group = await joinOwnershipGroup(kafka, options.groupId, topics, partitionSet, logger);
      if (released || stopped) await group.close();
    })()
      .catch((error: unknown) => logger.warn("reply group not joined again", { error }))
      .finally(() => {
        rejoining = undefined;
      });
  };
  const release = (): Promise<void> => {
    released ??= (async () => {
      await rejoining;
      await group?.close();
      for (const topic of topics) partitionSet.setOwned(topic, []);
    })();
    return released;
  };
  const waitFor: ReplyReader["waitFor"] = (correlationId, waiter, topic = defaultTopic) => {
    if (stopped) {
      queueMicrotask(() => waiter.onFailure(new Error("reply reader is closed")));
      return noTicket;
    }
    // Every partition is read for good in mode all: nothing to count.
    const partition = tracked ? partitionSet.acquire(topic, encoder.encode(correlationId)) : -1;
    const current = waiters.get(correlationId);
    if (current === undefined) waiters.set(correlationId, waiter);
    else if (Array.isArray(current)) current.push(waiter);
    else waiters.set(correlationId, [current, waiter]);
    waiting++;
    return partition;
  };
  const stopWaiting: ReplyReader["stopWaiting"] = (
    correlationId,
    waiter,
    topic = defaultTopic,
    ticket,
  ) => {
    if (ticket === noTicket) return;
    if (ticket >= 0) partitionSet.release(topic, ticket);
    const current = waiters.get(correlationId);
    if (current === waiter) {
      waiters.delete(correlationId);
      waiting--;
      return;
    }
    if (!Array.isArray(current)) return;
    const index = current.indexOf(waiter);
    if (index < 0) return;
    waiting--;
    current.splice(index, 1);
    if (current.length === 1) waiters.set(correlationId, current[0] as ReplyWaiter);
  };

  return {
    get waiting() {
      return waiting;
    },
    get dropped() {
      return dropped;
    },
    get recordsRead() {
      return recordsRead;
    },
    partitions: () => partitionSet.stats(),
    uuidChooser: (topic) => partitionSet.uuidChooser(topic),
    register(correlationId, waiter, topic) {
      const ticket = waitFor(correlationId, waiter, topic);
      let registered = true;
      return () => {
        if (!registered) return;
        registered = false;
        stopWaiting(correlationId, waiter, topic, ticket);
      };
    },
    waitFor,
    stopWaiting,
    release,
    async close() {
      if (stopped) return;
      stopped = true;
      await release().catch(() => {});
      partitionSet.close();
      reader?.stop();
      cluster.close();
      failAll(new Error("reply reader is closed"));
    },
  };
}

/**
 * Joins the group whose assignment says which partitions this instance owns. Its member only
 * takes part in the group: it is paused for good, so it fetches nothing and commits nothing.
 */
async function joinOwnershipGroup(
  kafka: Kafka,
  groupId: string | undefined,
  topics: string[],
  set: ReplyPartitionSet,
  logger: Logger,
): Promise<GroupConsumer> {
  if (groupId === undefined) throw new Error("reply partitions by group need a group id");
  const consumer = await startGroupConsumer(kafka, {
    groupId,
    topics,
    logger,
    fromBeginning: false,
    // Ownership moves cheaply (nothing to commit, no state): notice members coming and going fast.
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 1_000,
    rebalanceTimeoutMs: 10_000,
    // The member's own fetch after each assignment answers at once and is its last.
    maxWaitTimeMs: 0,
    onRecord: () => true,
    onRebalancing: async () => {},
    onAssignment(assignment) {
      for (const topic of topics) {
        set.setOwned(
          topic,
          assignment.filter((a) => a.topic === topic).map((a) => a.partition),
        );
      }
      logger.info("reply partitions assigned", { groupId, partitions: set.stats() });
    },
  });
  consumer.pause();
  return consumer;
}
