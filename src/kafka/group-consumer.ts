/**
 * A consumer-group member for west (docs/contract.md: West), on the gateway's own client (src/kafka/client/):
 * the standard consumer group protocol (FindCoordinator, JoinGroup, SyncGroup with the
 * leader assigning partitions, Heartbeat, OffsetFetch/OffsetCommit, LeaveGroup), with
 * "consumer" protocol metadata, so other Kafka consumers can share or inspect the group.
 * The parts live in src/kafka/group/: the coordinator link, joining, heartbeats, offsets,
 * the assignor, and how each failure is reacted to (as Kafka's Java consumer does).
 *
 * Records are handed over one at a time, in partition order, and offsets are committed only
 * when the caller says. A record the caller refuses (it has no room for it now) pauses its
 * partition: the record and those after it are read again once the caller resumes the
 * refused partitions. When the group rebalances, records stop, the caller gets
 * `onRebalancing` and the member rejoins only after it has settled (its commits go out under
 * the old generation). A coordinator that stops answering is found again without a rejoin:
 * records keep coming from the partition leaders meanwhile.
 */

import { defaultKafkaGroupTimings } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { leaveGroupApi } from "./client/apis/leave-group.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import { type PartitionReader, startPartitionReader } from "./client/partition-reader.ts";
import { backoff, sleep } from "./client/retry.ts";
import type { TopicPartition } from "./group/consumer-protocol.ts";
import { groupByTopic } from "./group/consumer-protocol.ts";
import { createCoordinatorLink } from "./group/coordinator-link.ts";
import { joinGroup, type MemberIdentity } from "./group/group-join.ts";
import { type CommitOffset, fetchCommittedOffsets, positionKey } from "./group/group-offsets.ts";
import { startHeartbeats } from "./group/heartbeat-loop.ts";
import { createCommitter } from "./group/member-commits.ts";
import { memberUnreadyReasons } from "./group/member-readiness.ts";
import {
  type MembershipReaction,
  membershipReaction,
  needsRejoin,
} from "./group/membership-reaction.ts";
import { type ConsumedRecord, createRecordHandoff } from "./group/record-handoff.ts";
import type { Kafka } from "./kafka-client.ts";
import { KafkaConnectionError, KafkaProtocolError, kafkaCodeName } from "./protocol/errors.ts";

// What west uses of the member's parts, so that it imports only this module.
export type { TopicPartition } from "./group/consumer-protocol.ts";
export type { CommitOffset } from "./group/group-offsets.ts";
export {
  type ConsumedRecord,
  isRebalancing,
  RebalancingError,
} from "./group/record-handoff.ts";

/** Where a member reports what keeps it from serving (ReadinessPart's `watch`). */
export interface ReadinessWatch {
  /** Adds reasons asked for on every check; returns a function that removes them. */
  watch(reasons: () => readonly string[]): () => void;
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
   * offsets (`positionKey` → next offset to read; absent: none). A returned promise holds
   * the first fetch of the assignment until it settles (state to restore first).
   */
  onAssignment(
    assignment: TopicPartition[],
    committed: ReadonlyMap<string, number>,
  ): void | Promise<void>;
  logger: Logger;
  /** Where a group without committed offsets starts (default true: no request is lost). */
  fromBeginning?: boolean;
  /** Unset: the Kafka handle's `group` timings, else `defaultKafkaGroupTimings`. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** How long joining or rebalancing may last before readiness says so (default 10 s). */
  unreadyAfterMs?: number;
  maxWaitTimeMs?: number;
  /** Give up on the first join after this long (default 60 s). */
  joinTimeoutMs?: number;
  /** Told, on every readiness check, why this member cannot serve now. */
  readiness?: ReadinessWatch;
  /** Headers whose values repeat from record to record (see DecodeOptions.repeatedValues). */
  repeatedValues?: ReadonlySet<string>;
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
  /** Why the member cannot serve now (empty when it can): what readiness reports. */
  unreadyReasons(): string[];
  /** The member's id and generation now (for logs and tests). */
  identity(): Readonly<MemberIdentity>;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

/** Where the member is: consuming, joining (no assignment read yet), or leaving one. */
type MemberState = "joining" | "stable" | "revoking";

/** Joins the group and resolves once the member has its first assignment. */
export async function startGroupConsumer(
  kafka: Kafka,
  opts: GroupConsumerOptions,
): Promise<GroupConsumer> {
  const { groupId, logger } = opts;
  const configured = kafka.group ?? {};
  const sessionTimeoutMs =
    opts.sessionTimeoutMs ??
    configured.sessionTimeoutMs ??
    defaultKafkaGroupTimings.sessionTimeoutMs;
  const heartbeatIntervalMs =
    opts.heartbeatIntervalMs ??
    configured.heartbeatIntervalMs ??
    defaultKafkaGroupTimings.heartbeatIntervalMs;
  const rebalanceTimeoutMs =
    opts.rebalanceTimeoutMs ??
    configured.rebalanceTimeoutMs ??
    defaultKafkaGroupTimings.rebalanceTimeoutMs;
  const unreadyAfterMs =
    opts.unreadyAfterMs ?? configured.unreadyAfterMs ?? defaultKafkaGroupTimings.unreadyAfterMs;
  const cluster = new KafkaCluster(kafka.wire);
  const link = createCoordinatorLink(cluster, groupId);
  const member: MemberIdentity = { memberId: "", generation: -1 };

  let state: MemberState = "joining";
  /** When the member last became, or stopped being, stable. */
  let stateSince = Date.now();
  /** JoinGroup/SyncGroup under way (heartbeats wait: the join keeps the member alive). */
  let inJoin = false;
  /** A rejoin asked for while the current generation was still being set up. */
  let rejoinRequested = false;
  /** Why the last join or heartbeat failed, for readiness and the start-up error. */
  let lastProblem: Error | undefined;
  let assignment: TopicPartition[] = [];
  let reader: PartitionReader | undefined;
  let paused = false;
  let closed = false;
  let wakeRebalance: (() => void) | undefined;

  const enter = (next: MemberState) => {
    // Joining and rebalancing count as one stretch of not being settled.
    if ((state === "stable") !== (next === "stable")) stateSince = Date.now();
    state = next;
  };

  /**
   * Applies a failed request's reaction, if it is about the member's current generation:
   * resets what the answer invalidated and starts a rejoin where one is needed.
   */
  const react = (reaction: MembershipReaction, generation: number, why: string) => {
    if (closed || generation !== member.generation) return;
    if (reaction === "find-coordinator") link.forget();
    if (reaction === "reset-member") {
      member.memberId = "";
      member.generation = -1;
    } else if (reaction === "reset-generation") {
      member.generation = -1;
    }
    if (!needsRejoin(reaction)) return;
    if (state === "stable") {
      logger.info("consumer group rebalancing", { groupId, why });
      enter("revoking");
      wakeRebalance?.();
    } else {
      rejoinRequested = true;
    }
  };

  const heartbeats = startHeartbeats({
    groupId,
    link,
    member,
    intervalMs: heartbeatIntervalMs,
    // During JoinGroup and SyncGroup the join itself keeps the member alive; after them
    // (restoring state, placing partitions) heartbeats go on.
    active: () => !closed && !inJoin,
    onFailure(error, reaction, generation) {
      lastProblem = error;
      if (needsRejoin(reaction)) {
        react(reaction, generation, `heartbeat: ${errorName(error)}`);
        return;
      }
      // The membership stands: the next heartbeat finds the coordinator again.
      react(reaction, generation, "heartbeat");
      logger.warn("consumer group heartbeat failed; keeping the membership", {
        groupId,
        memberId: member.memberId,
        generation: member.generation,
        kafkaError: errorName(error),
        error,
      });
    },
    onRecovered() {
      logger.info("consumer group heartbeat answered again", {
        groupId,
        generation: member.generation,
      });
    },
  });

  const unwatch = opts.readiness?.watch(() => unreadyReasons()) ?? (() => {});

  const unreadyReasons = (): string[] =>
    closed
      ? []
      : memberUnreadyReasons(
          {
            groupId,
            state,
            stateSince,
            lastProblem,
            heartbeatAnsweredAt: heartbeats.lastAnsweredAt(),
            sessionTimeoutMs,
            unreadyAfterMs,
            unplaced: reader?.unplaced() ?? [],
          },
          Date.now(),
        );

  /** Committed offsets, waiting out a coordinator that loads or moves. */
  const committedOffsets = async (parts: TopicPartition[]): Promise<Map<string, number>> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetchCommittedOffsets(link, groupId, parts);
      } catch (error) {
        const reaction = membershipReaction(error);
        const retry = reaction === "retry" || reaction === "find-coordinator";
        if (!retry || attempt >= 5 || closed) throw error;
        logger.info("reading committed offsets failed; retrying", {
          groupId,
          kafkaError: errorName(error),
          error,
        });
        await sleep(backoff(attempt));
      }
    }
  };

  const handoff = createRecordHandoff({
    groupId,
    logger,
    onRecord: opts.onRecord,
    generation: () => member.generation,
    mayHand: (generation) =>
      !paused && !closed && state === "stable" && member.generation === generation,
    settled: () => state === "stable",
  });
  const handle = handoff.handler(() => reader);

  let firstJoin: (() => void) | undefined;
  let failFirstJoin: ((error: Error) => void) | undefined;
  const joined = new Promise<void>((resolve, reject) => {
    firstJoin = resolve;
    failFirstJoin = reject;
  });

  /** Joins, reads the assignment until the group rebalances, and hands over; once. */
  const serveOneGeneration = async () => {
    enter("joining");
    rejoinRequested = false;
    inJoin = true;
    const next = await joinGroup(cluster, link, member, {
      groupId,
      topics: opts.topics,
      sessionTimeoutMs,
      rebalanceTimeoutMs,
      logger,
    }).finally(() => {
      inJoin = false;
    });
    if (closed) return;
    heartbeats.restart();
    assignment = next;
    handoff.takeRefused();
    const positions = await committedOffsets(next);
    await opts.onAssignment(next, positions);
    const settled = new Promise<void>((resolve) => (wakeRebalance = resolve));
    reader = await startPartitionReader({
      cluster,
      topics: opts.topics,
      assigned: next,
      positions,
      start: opts.fromBeginning === false ? "latest" : "earliest",
      maxWaitMs: opts.maxWaitTimeMs ?? 1_000,
      partitionMaxBytes: 1024 * 1024,
      maxBytes: 10 * 1024 * 1024,
      ...(opts.repeatedValues ? { repeatedValues: opts.repeatedValues } : {}),
      onRecords: handle,
      onProblem: (message, error) =>
        logger.warn(`west consumer: ${message}`, { groupId, kafkaError: errorName(error), error }),
      // Held: no record of the partition past the batch is handled, so none is committed.
      ...(kafka.undecodable
        ? { undecodable: kafka.undecodable.reporter(`west group ${groupId}`) }
        : {}),
    });
    if (paused) reader.pause(next);
    if (rejoinRequested) {
      // Asked for while this generation was being set up: its records are never handed on.
      enter("revoking");
    } else {
      enter("stable");
      lastProblem = undefined;
      firstJoin?.();
      logger.info("consumer group joined", {
        groupId,
        memberId: member.memberId,
        generation: member.generation,
        partitions: next.length,
      });
      await settled;
    }
    reader.stop();
    await handoff.idle();
    if (closed) return;
    await opts
      .onRebalancing(true)
      .catch((error: unknown) => logger.warn("commit before rebalance failed", { groupId, error }));
  };

  const run = async () => {
    for (let failures = 0; !closed; ) {
      try {
        await serveOneGeneration();
        failures = 0;
      } catch (error) {
        reader?.stop();
        reader = undefined;
        if (closed) return;
        lastProblem = error as Error;
        const reaction = membershipReaction(error);
        react(reaction, member.generation, `join: ${errorName(error)}`);
        if (reaction === "fatal") failFirstJoin?.(error as Error);
        const fields = { groupId, kafkaError: errorName(error), error };
        // A rebalance under way answers joins that way: join again at once, the first time.
        if (needsRejoin(reaction) && failures === 0) {
          logger.info("consumer group join interrupted; joining again", fields);
          failures++;
          continue;
        }
        if (reaction === "fatal") logger.error("consumer group join failed; retrying", fields);
        else logger.warn("consumer group join failed; retrying", fields);
        await sleep(backoff(failures++));
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
                `consumer group ${groupId} got no assignment in time${lastProblem ? ` (last failure: ${lastProblem.message})` : ""}`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    closed = true;
    heartbeats.stop();
    unwatch();
    reader?.stop();
    cluster.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  const commit = createCommitter({
    groupId,
    link,
    member,
    logger,
    react,
    errorName,
    closed: () => closed,
  });

  return {
    assignment: () => assignment,
    commit,
    pause() {
      paused = true;
      reader?.pause(assignment);
    },
    refused: () => handoff.refused(),
    async lag() {
      const parts = assignment;
      if (parts.length === 0 || closed) return [];
      const committed = await fetchCommittedOffsets(link, groupId, parts);
      const out: { topic: string; partition: number; lag: number }[] = [];
      for (const [topic, partitions] of groupByTopic(parts)) {
        const [ends, starts] = await Promise.all([
          cluster.listOffsets(topic, partitions, -1),
          cluster.listOffsets(topic, partitions, -2),
        ]);
        for (const end of ends) {
          const from =
            committed.get(positionKey(topic, end.partition)) ??
            starts.find((s) => s.partition === end.partition)?.offset ??
            0;
          out.push({ topic, partition: end.partition, lag: Math.max(0, end.offset - from) });
        }
      }
      return out;
    },
    resumeRefused() {
      if (paused || closed) return;
      const parts = handoff.takeRefused();
      if (parts.length > 0) reader?.resume(parts);
    },
    unreadyReasons,
    identity: () => ({ ...member }),
    async close() {
      if (closed) return;
      closed = true;
      heartbeats.stop();
      unwatch();
      wakeRebalance?.();
      reader?.stop();
      await handoff.idle();
      if (member.generation >= 0 && member.memberId) {
        await link
          .call(leaveGroupApi, { groupId, memberId: member.memberId })
          .then(({ error }) => {
            if (error !== 0) {
              logger.debug("leave group refused", { groupId, kafkaError: kafkaCodeName(error) });
            }
          })
          .catch((error: unknown) => logger.debug("leave group failed", { groupId, error }));
      }
      cluster.close();
    },
  };
}

/** A failure's name for logs: the Kafka error code's name, else the error's type. */
function errorName(error: unknown): string {
  if (error instanceof KafkaProtocolError) return kafkaCodeName(error.code);
  if (error instanceof KafkaConnectionError) return error.name;
  return error instanceof Error ? error.name : String(error);
}
