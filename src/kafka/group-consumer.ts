/**
 * A consumer-group member for west (SPEC §6), on the gateway's own client (src/kafka/client/):
 * the standard consumer group protocol (FindCoordinator, JoinGroup, SyncGroup with the
 * leader assigning partitions, Heartbeat, OffsetFetch/OffsetCommit, LeaveGroup), with
 * "consumer" protocol metadata, so other Kafka consumers can share or inspect the group.
 *
 * Records are handed over one at a time, in partition order, and offsets are committed only
 * when the caller says. A record the caller refuses (it has no room for it now) pauses its
 * partition: the record and those after it are read again once the caller resumes the
 * refused partitions. Heartbeats run on their own timer, so a slow record never costs the
 * membership; when the group rebalances, records stop, the caller gets `onRebalancing` and
 * the member rejoins only after it has settled (its commits go out under the old generation).
 */

import type { Logger } from "../ops/logger.ts";
import { backoff, brokerAddress, KafkaCluster, type Lane } from "./client/kafka-cluster.ts";
import { type PartitionReader, startPartitionReader } from "./client/partition-reader.ts";
import type { WireConnection } from "./client/wire-connection.ts";
import type { Kafka } from "./kafka-client.ts";
import { ApiKey } from "./protocol/api-keys.ts";
import { KafkaConnectionError, KafkaProtocolError, kafkaCodeName } from "./protocol/errors.ts";
import { type FetchedRecord, utf8 } from "./protocol/record-codec.ts";
import { Reader, Writer } from "./protocol/wire.ts";
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
   * Handles one record; consumption waits until it resolves. While it waits long it may
   * call `keepAlive`, which throws when the group is rebalancing (let that propagate).
   * Resolving `false` refuses the record: its partition pauses until `resumeRefused`. A
   * handler that answers at once may return the answer itself (no turn per record).
   */
  onRecord(
    record: ConsumedRecord,
    keepAlive: () => Promise<void>,
  ): boolean | undefined | Promise<boolean | undefined>;
  /**
   * The group is rebalancing: commit what is safe. `canWait` says whether the member's
   * rejoin waits for the returned promise (it always does here).
   */
  onRebalancing(canWait: boolean): Promise<void>;
  /**
   * The member's assignment after each join (possibly empty), with the group's committed
   * offsets ("topic\0partition" → next offset to read; absent: none). A returned promise
   * holds the first fetch of the assignment until it settles (state to restore first).
   */
  onAssignment(
    assignment: TopicPartition[],
    committed: ReadonlyMap<string, number>,
  ): void | Promise<void>;
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
  /**
   * How many records each assigned partition holds past the group's committed offset (or
   * past the log start when nothing is committed yet).
   */
  lag(): Promise<{ topic: string; partition: number; lag: number }[]>;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

/** Thrown by `keepAlive` while the group rebalances (`type` as kafkajs names it). */
export class RebalancingError extends Error {
  override name = "RebalancingError";
  readonly type = "REBALANCE_IN_PROGRESS";
}

// Assignors offered, in order of preference. All three use the standard consumer protocol
// format; "RoundRobinAssigner" is the name kafkajs gives round robin, so members of earlier
// gateway versions (kafkajs) and this one can share a group during a rolling upgrade.
const assignors = ["range", "roundrobin", "RoundRobinAssigner"] as const;

const rebalanceCodes = new Set([22, 25, 27]); // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS
const coordinatorCodes = new Set([14, 15, 16]); // load in progress, not available, not coordinator

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Joins the group and resolves once the member has its first assignment. */
export async function startGroupConsumer(
  kafka: Kafka,
  opts: GroupConsumerOptions,
): Promise<GroupConsumer> {
  const { groupId, logger } = opts;
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? 30_000;
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 3_000;
  const rebalanceTimeoutMs = opts.rebalanceTimeoutMs ?? 60_000;
  const cluster = new KafkaCluster(kafka.wire);

  let memberId = "";
  let generation = -1;
  let coordinator: number | undefined;
  let assignment: TopicPartition[] = [];
  let reader: PartitionReader | undefined;
  let paused = false;
  let closed = false;
  let rebalancing = false;
  // JoinGroup/SyncGroup under way: the rebalance in progress is this one (heartbeats pause,
  // and REBALANCE_IN_PROGRESS answers to commits must not start another round after it).
  let joining = false;
  let wakeRebalance: (() => void) | undefined;
  // Records are handled one at a time across partitions (and brokers): a promise chain.
  let handling: Promise<void> = Promise.resolve();
  const refused = new Map<string, TopicPartition>();

  const triggerRebalance = (why: string) => {
    if (rebalancing || joining || closed) return;
    logger.debug("consumer group rebalancing", { groupId, why });
    rebalancing = true;
    wakeRebalance?.();
  };

  const coordinatorConnection = async (lane: Lane): Promise<WireConnection> => {
    if (coordinator === undefined) {
      const connection = await cluster.anyBroker();
      const version = connection.version(ApiKey.FindCoordinator, 1, 2);
      const r = await connection.request(ApiKey.FindCoordinator, version, (w) =>
        w.string(groupId).int8(0),
      );
      r.int32(); // throttle
      const error = r.int16();
      const message = r.nullableString();
      const node = r.int32();
      const host = r.string();
      const port = r.int32();
      if (error !== 0) {
        throw new KafkaProtocolError(
          error,
          `no coordinator for group ${groupId}: ${kafkaCodeName(error)}${message ? ` (${message})` : ""}`,
        );
      }
      cluster.addBroker(node, brokerAddress(host, port));
      coordinator = node;
    }
    return cluster.connection(coordinator, lane);
  };

  /** A group request to the coordinator; a coordinator error forgets the coordinator. */
  const groupRequest = async (
    apiKey: number,
    min: number,
    max: number,
    body: (w: Writer, version: number) => void,
    extraWaitMs = 0,
  ): Promise<{ r: Reader; version: number }> => {
    // The coordinator holds JoinGroup and SyncGroup until the group settles and answers a
    // connection's requests in order: heartbeats, commits and offset reads queued behind
    // them would time out (and take the join down with the connection). They go apart.
    const lane = apiKey === ApiKey.JoinGroup || apiKey === ApiKey.SyncGroup ? "group" : "main";
    const connection = await coordinatorConnection(lane);
    const version = connection.version(apiKey, min, max);
    try {
      const r = await connection.request(apiKey, version, (w) => body(w, version), extraWaitMs);
      return { r, version };
    } catch (error) {
      if (error instanceof KafkaConnectionError) coordinator = undefined;
      throw error;
    }
  };

  const checkGroupError = (error: number, what: string) => {
    if (error === 0) return;
    if (coordinatorCodes.has(error)) coordinator = undefined;
    if (error === 25) memberId = "";
    throw new KafkaProtocolError(error, `${what} for group ${groupId}: ${kafkaCodeName(error)}`);
  };

  const join = async (): Promise<TopicPartition[]> => {
    for (;;) {
      const subscription = encodeSubscription(opts.topics);
      const { r, version } = await groupRequest(
        ApiKey.JoinGroup,
        2,
        5,
        (w, version) => {
          w.string(groupId).int32(sessionTimeoutMs).int32(rebalanceTimeoutMs).string(memberId);
          if (version >= 5) w.nullableString(null);
          w.string("consumer");
          w.array(assignors, (w, name) => w.string(name).bytes(subscription));
        },
        rebalanceTimeoutMs,
      );
      r.int32(); // throttle
      const error = r.int16();
      const gen = r.int32();
      const protocol = r.string();
      const leader = r.string();
      const me = r.string();
      const members = r.array((r) => {
        const id = r.string();
        if (version >= 5) r.nullableString();
        return { id, topics: decodeSubscription(r.bytes()) };
      });
      if (error === 79) {
        // MEMBER_ID_REQUIRED: the broker named us; join again under that id.
        memberId = me;
        continue;
      }
      checkGroupError(error, "join");
      memberId = me;
      generation = gen;
      const plan = leader === me ? await assign(protocol, members) : [];
      const synced = await groupRequest(ApiKey.SyncGroup, 1, 3, (w, version) => {
        w.string(groupId).int32(generation).string(memberId);
        if (version >= 3) w.nullableString(null);
        w.array(plan, (w, [member, bytes]) => w.string(member).bytes(bytes));
      });
      synced.r.int32(); // throttle
      checkGroupError(synced.r.int16(), "sync");
      return decodeAssignment(synced.r.bytes());
    }
  };

  /** The leader's plan: every subscribed partition to one member, range or round robin. */
  const assign = async (
    protocol: string,
    members: { id: string; topics: string[] }[],
  ): Promise<[string, Uint8Array][]> => {
    const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
    await cluster.refresh(topics).catch(() => {});
    const plan = new Map<string, TopicPartition[]>(members.map((m) => [m.id, []]));
    const ids = members.map((m) => m.id).sort();
    let turn = 0;
    for (const topic of topics) {
      // A topic left out here stays unread until the next rebalance: wait out what a
      // cluster answers while it creates a topic or moves leaders.
      const count = (
        await cluster
          .partitionsWithin(topic, Date.now() + cluster.settings.retryTimeoutMs)
          .catch((error: unknown) => {
            logger.warn("no partitions to assign for a subscribed topic", {
              groupId,
              topic,
              error,
            });
            return [];
          })
      ).length;
      const takers = ids.filter((id) => members.find((m) => m.id === id)?.topics.includes(topic));
      if (takers.length === 0) continue;
      for (let p = 0; p < count; p++) {
        const member =
          protocol === "range"
            ? takers[rangeOwner(p, count, takers.length)]
            : takers[turn++ % takers.length];
        plan.get(member as string)?.push({ topic, partition: p });
      }
    }
    return [...plan].map(([id, parts]) => [id, encodeAssignment(parts)]);
  };

  const committedOffsets = async (parts: TopicPartition[]): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    if (parts.length === 0) return out;
    const byTopic = groupByTopic(parts);
    const { r, version } = await groupRequest(ApiKey.OffsetFetch, 1, 5, (w) => {
      w.string(groupId);
      w.array([...byTopic], (w, [topic, list]) => {
        w.string(topic).array(list, (w, p) => w.int32(p));
      });
    });
    if (version >= 3) r.int32(); // throttle
    const topics = r.int32();
    for (let t = 0; t < topics; t++) {
      const topic = r.string();
      const count = r.int32();
      for (let i = 0; i < count; i++) {
        const partition = r.int32();
        const offset = Number(r.int64());
        if (version >= 5) r.int32(); // leader epoch
        r.nullableString(); // metadata
        checkGroupError(r.int16(), `committed offset of ${topic}-${partition}`);
        if (offset >= 0) out.set(`${topic}\0${partition}`, offset);
      }
    }
    if (version >= 2) checkGroupError(r.int16(), "offset fetch");
    return out;
  };

  /** committedOffsets, waiting out a coordinator that loads or moves (a failure costs a rejoin). */
  const committedOffsetsRetrying = async (
    parts: TopicPartition[],
  ): Promise<Map<string, number>> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await committedOffsets(parts);
      } catch (error) {
        const retriable =
          error instanceof KafkaConnectionError ||
          (error instanceof KafkaProtocolError && coordinatorCodes.has(error.code));
        if (!retriable || attempt >= 5 || closed) throw error;
        await sleep(backoff(attempt));
      }
    }
  };

  const handle = (topic: string, partition: number, records: FetchedRecord[]) => {
    const myGeneration = generation;
    const current = reader;
    handling = handling.then(async () => {
      for (const fetched of records) {
        if (paused || closed || rebalancing || generation !== myGeneration) {
          current?.seek(topic, partition, fetched.offset);
          return;
        }
        const record: ConsumedRecord = {
          topic,
          partition,
          offset: BigInt(fetched.offset),
          key: fetched.key === null ? null : utf8(fetched.key),
          value: fetched.value,
          headers: fetched.headers,
          timestampMs: fetched.timestamp,
        };
        let accepted: boolean | undefined;
        try {
          const answer = opts.onRecord(record, keepAlive);
          accepted = answer instanceof Promise ? await answer : answer;
        } catch (error) {
          // Not handled (a rebalance interrupted it): read it again, here or at the new owner.
          current?.seek(topic, partition, fetched.offset);
          if (!isRebalancing(error)) logger.error("record handler failed", { groupId, error });
          return;
        }
        if (accepted === false) {
          const tp = { topic, partition };
          refused.set(`${topic}\0${partition}`, tp);
          current?.pause([tp]);
          current?.seek(topic, partition, fetched.offset);
          return;
        }
      }
    });
    return handling;
  };

  const keepAlive = async () => {
    if (rebalancing) throw new RebalancingError(`group ${groupId} is rebalancing`);
  };

  // One heartbeat at a time: a slow coordinator must not collect a queue of them.
  let heartbeating = false;
  const heartbeat = setInterval(() => {
    if (closed || rebalancing || joining || heartbeating) return;
    if (generation < 0 || coordinator === undefined) return;
    const sent = generation;
    heartbeating = true;
    groupRequest(ApiKey.Heartbeat, 0, 3, (w, version) => {
      w.string(groupId).int32(generation).string(memberId);
      if (version >= 3) w.nullableString(null);
    })
      .then(({ r, version }) => {
        // An answer about a generation the member has since left says nothing about this one.
        if (generation !== sent) return;
        if (version >= 1) r.int32(); // throttle
        const error = r.int16();
        if (error === 0) return;
        if (error === 25) memberId = "";
        if (coordinatorCodes.has(error)) coordinator = undefined;
        triggerRebalance(kafkaCodeName(error));
      })
      .catch((error: unknown) => {
        if (generation === sent) triggerRebalance(`heartbeat failed: ${(error as Error).message}`);
      })
      .finally(() => {
        heartbeating = false;
      });
  }, heartbeatIntervalMs);
  heartbeat.unref?.();

  let firstJoin: (() => void) | undefined;
  let failFirstJoin: ((error: Error) => void) | undefined;
  const joined = new Promise<void>((resolve, reject) => {
    firstJoin = resolve;
    failFirstJoin = reject;
  });
  // Why the first join has not succeeded yet, for the start-up error.
  let lastFailure: Error | undefined;

  const run = async () => {
    for (let failures = 0; !closed; ) {
      try {
        rebalancing = false;
        joining = true;
        const next = await join().finally(() => {
          joining = false;
        });
        if (closed) return;
        assignment = next;
        refused.clear();
        const positions = await committedOffsetsRetrying(next);
        await opts.onAssignment(next, positions);
        const settled = new Promise<void>((resolve) => (wakeRebalance = resolve));
        if (rebalancing) wakeRebalance?.();
        reader = await startPartitionReader({
          cluster,
          topics: opts.topics,
          assigned: next,
          positions,
          start: opts.fromBeginning === false ? "latest" : "earliest",
          maxWaitMs: opts.maxWaitTimeMs ?? 1_000,
          partitionMaxBytes: 1024 * 1024,
          maxBytes: 10 * 1024 * 1024,
          onRecords: handle,
          onProblem: (message, error) =>
            logger.warn(`west consumer: ${message}`, { groupId, error }),
          // Held: no record of the partition past the batch is handled, so none is committed.
          ...(kafka.undecodable
            ? { undecodable: kafka.undecodable.reporter(`west group ${groupId}`) }
            : {}),
        });
        if (paused) reader.pause(next);
        failures = 0;
        firstJoin?.();
        await settled;
        reader.stop();
        await handling;
        if (closed) return;
        await opts
          .onRebalancing(true)
          .catch((error: unknown) =>
            logger.warn("commit before rebalance failed", { groupId, error }),
          );
      } catch (error) {
        reader?.stop();
        reader = undefined;
        if (closed) return;
        const routine = error instanceof KafkaProtocolError && rebalanceCodes.has(error.code);
        lastFailure = error as Error;
        // No version in common with the broker: retrying cannot help, so start-up fails now.
        if (error instanceof KafkaProtocolError && error.code === 35) failFirstJoin?.(error);
        if (!routine) {
          logger.warn("consumer group join failed; retrying", { groupId, error });
          await sleep(backoff(failures++));
        }
      }
    }
  };
  void run();

  const timeoutMs = opts.joinTimeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      joined,
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `consumer group ${groupId} got no assignment in time${lastFailure ? ` (last failure: ${lastFailure.message})` : ""}`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    closed = true;
    clearInterval(heartbeat);
    cluster.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  return {
    assignment: () => assignment,
    async commit(offsets) {
      if (offsets.length === 0 || closed) return;
      const byTopic = new Map<string, CommitOffset[]>();
      for (const o of offsets) byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), o]);
      const { r, version } = await groupRequest(ApiKey.OffsetCommit, 2, 7, (w, version) => {
        w.string(groupId).int32(generation).string(memberId);
        if (version >= 7) w.nullableString(null);
        if (version <= 4) w.int64(-1); // retention: the broker's default
        w.array([...byTopic], (w, [topic, list]) => {
          w.string(topic).array(list, (w, o) => {
            w.int32(o.partition).int64(o.offset);
            if (version >= 6) w.int32(-1);
            w.nullableString(null);
          });
        });
      });
      if (version >= 3) r.int32(); // throttle
      const topics = r.int32();
      for (let t = 0; t < topics; t++) {
        const topic = r.string();
        const count = r.int32();
        for (let i = 0; i < count; i++) {
          const partition = r.int32();
          const error = r.int16();
          if (error !== 0) {
            if (rebalanceCodes.has(error)) triggerRebalance(`commit: ${kafkaCodeName(error)}`);
            checkGroupError(error, `commit of ${topic}-${partition}`);
          }
        }
      }
    },
    pause() {
      paused = true;
      reader?.pause(assignment);
    },
    refused: () => [...refused.values()],
    async lag() {
      const parts = assignment;
      if (parts.length === 0 || closed) return [];
      const committed = await committedOffsets(parts);
      const out: { topic: string; partition: number; lag: number }[] = [];
      for (const [topic, partitions] of groupByTopic(parts)) {
        const [ends, starts] = await Promise.all([
          cluster.listOffsets(topic, partitions, -1),
          cluster.listOffsets(topic, partitions, -2),
        ]);
        for (const end of ends) {
          const key = `${topic}\0${end.partition}`;
          const from =
            committed.get(key) ?? starts.find((s) => s.partition === end.partition)?.offset ?? 0;
          out.push({ topic, partition: end.partition, lag: Math.max(0, end.offset - from) });
        }
      }
      return out;
    },
    resumeRefused() {
      if (refused.size === 0 || paused || closed) return;
      const parts = [...refused.values()];
      refused.clear();
      reader?.resume(parts);
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      wakeRebalance?.();
      reader?.stop();
      await handling;
      if (generation >= 0 && memberId) {
        await groupRequest(ApiKey.LeaveGroup, 0, 2, (w) => w.string(groupId).string(memberId))
          .then(({ r, version }) => {
            if (version >= 1) r.int32();
            const error = r.int16();
            if (error !== 0)
              logger.debug("leave group refused", { groupId, error: kafkaCodeName(error) });
          })
          .catch((error: unknown) => logger.debug("leave group failed", { groupId, error }));
      }
      cluster.close();
    },
  };
}

/** Whether a failure means the group is rebalancing (ours, or kafkajs' error types). */
export function isRebalancing(err: unknown): boolean {
  if (err instanceof KafkaProtocolError) return rebalanceCodes.has(err.code) || err.code === 16;
  const type = (err as { type?: unknown } | null)?.type;
  return (
    type === "REBALANCE_IN_PROGRESS" ||
    type === "NOT_COORDINATOR_FOR_GROUP" ||
    type === "ILLEGAL_GENERATION"
  );
}

/** Which of `members` members owns partition `p` of `count` under range assignment. */
export function rangeOwner(p: number, count: number, members: number): number {
  const per = Math.floor(count / members);
  const extra = count % members;
  // The first `extra` members take per + 1 partitions each.
  const cut = extra * (per + 1);
  return p < cut ? Math.floor(p / (per + 1)) : extra + Math.floor((p - cut) / Math.max(per, 1));
}

function groupByTopic(parts: readonly TopicPartition[]): Map<string, number[]> {
  const byTopic = new Map<string, number[]>();
  for (const { topic, partition } of parts) {
    const list = byTopic.get(topic);
    if (list) list.push(partition);
    else byTopic.set(topic, [partition]);
  }
  return byTopic;
}

/** ConsumerProtocolSubscription v0: the topics, no user data. */
export function encodeSubscription(topics: readonly string[]): Uint8Array {
  const w = new Writer(64);
  w.int16(0)
    .array(topics, (w, t) => w.string(t))
    .nullableBytes(null);
  return w.bytesView().slice();
}

/** The topics of any version of ConsumerProtocolSubscription (later fields ignored). */
export function decodeSubscription(bytes: Uint8Array): string[] {
  if (bytes.length < 6) return [];
  const r = new Reader(bytes);
  r.int16();
  return r.array((r) => r.string());
}

/** ConsumerProtocolAssignment v0. */
export function encodeAssignment(parts: readonly TopicPartition[]): Uint8Array {
  const w = new Writer(64);
  w.int16(0)
    .array([...groupByTopic(parts)], (w, [topic, list]) =>
      w.string(topic).array(list, (w, p) => w.int32(p)),
    )
    .nullableBytes(null);
  return w.bytesView().slice();
}

/** The partitions of any version of ConsumerProtocolAssignment (empty bytes = none). */
export function decodeAssignment(bytes: Uint8Array): TopicPartition[] {
  if (bytes.length < 6) return [];
  const r = new Reader(bytes);
  r.int16();
  return r
    .array((r) => {
      const topic = r.string();
      return r.array((r) => r.int32()).map((partition) => ({ topic, partition }));
    })
    .flat();
}
