/**
 * What west does when the group hands it a new assignment (docs/idempotency.md, "Partition
 * moves"): revoked partitions' trackers and held calls go, their calls still running are
 * abandoned (the rebalance grace has passed: the new owner runs them again as their next
 * attempt), and, with the Kafka store, what this process knew about them is dropped and
 * every newly assigned partition is restored from its changelog before its records come.
 */

import type { TopicPartition } from "../kafka/group-consumer.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import type { Logger } from "../ops/logger.ts";
import type { ReadinessPart } from "../ops/readiness.ts";
import type { CallRunner } from "./call-runner.ts";
import { type RestoredCall, restoreChangelog } from "./changelog-restore.ts";
import type { ChangelogTopic } from "./changelog-topic.ts";
import type { EndedCalls } from "./ended-calls.ts";
import type { HeldCalls } from "./held-calls.ts";
import type { OffsetCommits } from "./offset-commits.ts";
import { type EndedCall, tpKey } from "./west-call.ts";

export interface AssignmentOptions {
  groupId: string;
  commits: OffsetCommits;
  held: HeldCalls;
  runner: CallRunner;
  ended: EndedCalls;
  /** Changelogs by request topic; undefined in memory mode (nothing to restore or drop). */
  changelogs: ReadonlyMap<string, ChangelogTopic> | undefined;
  kafka: Kafka;
  windowMs: number;
  tailGraceMs: number;
  logger: Logger;
  /**
   * Not ready while restoring after a rebalance (the first restore is part of start-up,
   * whose readiness the caller reports).
   */
  restoreReadiness?: Pick<ReadinessPart, "ready" | "unready"> | undefined;
}

/** The group consumer's `onAssignment` for one west binding. */
export function createAssignmentHandler(
  opts: AssignmentOptions,
): (assignment: TopicPartition[], committed: ReadonlyMap<string, number>) => Promise<void> {
  const { commits, held, runner, ended, logger } = opts;
  let current = new Set<string>();
  let first = true;
  return async (assignment, committed) => {
    const readiness = first ? undefined : opts.restoreReadiness;
    first = false;
    const next = new Set(assignment.map(tpKey));
    const revoked = new Set([...current].filter((key) => !next.has(key)));
    const fresh = assignment.filter((tp) => !current.has(tpKey(tp)));
    current = next;
    commits.assign(assignment);
    // Held calls of revoked partitions never start here (the new owner reads them).
    held.drop((call) => !commits.isCurrent(call.key, call.tracker));
    if (revoked.size > 0) {
      runner.abandon((call) => revoked.has(tpKey(call.position)));
      if (opts.changelogs) ended.dropPartitions(revoked);
    }
    logger.info("west assignment", {
      groupId: opts.groupId,
      partitions: assignment.map(tpKey),
    });
    if (!opts.changelogs || fresh.length === 0) return;
    readiness?.unready(`restoring the idempotency changelog of ${fresh.length} partitions`);
    try {
      await restorePartitions(opts, opts.changelogs, fresh, committed);
    } catch (error) {
      // The group consumer joins again; these partitions are restored then, not skipped.
      for (const tp of fresh) current.delete(tpKey(tp));
      opts.restoreReadiness?.unready(
        `idempotency changelog restore failed: ${(error as Error).message}`,
      );
      throw error;
    }
    readiness?.ready();
  };
}

async function restorePartitions(
  opts: AssignmentOptions,
  changelogs: ReadonlyMap<string, ChangelogTopic>,
  fresh: TopicPartition[],
  committed: ReadonlyMap<string, number>,
): Promise<void> {
  const byTopic = new Map<string, TopicPartition[]>();
  for (const tp of fresh) byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp]);
  for (const [topic, parts] of byTopic) {
    const changelog = changelogs.get(topic);
    if (!changelog) throw new Error(`west: no changelog for request topic ${topic}`);
    const short = parts.find((tp) => tp.partition >= changelog.partitions);
    if (short) {
      throw new Error(
        `changelog topic ${changelog.topic} has ${changelog.partitions} partitions; request ` +
          `topic ${topic} now has partition ${short.partition}: add partitions to the ` +
          `changelog (kafka-topics.sh --alter --topic ${changelog.topic} --partitions ` +
          `${short.partition + 1}) and restart`,
      );
    }
    const committedOf = (p: number) => {
      const offset = committed.get(`${topic}\0${p}`);
      return offset === undefined ? undefined : BigInt(offset);
    };
    const result = await restoreChangelog({
      kafka: opts.kafka,
      changelog: changelog.topic,
      requestTopic: topic,
      partitions: parts.map((tp) => ({
        partition: tp.partition,
        committed: committedOf(tp.partition),
      })),
      windowMs: opts.windowMs,
      logger: opts.logger,
    });
    let kept = 0;
    const now = Date.now();
    for (const [partition, end] of result.leases) {
      opts.ended.setLease({ topic, partition }, end);
    }
    for (const [partition, calls] of result.calls) {
      const floor = committedOf(partition);
      for (const restored of calls) {
        const call = endedFromRestored(restored, topic, partition);
        // Needed for re-deliveries (not yet committed): kept from now, whatever its age, and
        // whatever the bounds until the commit point passes it.
        const uncommitted = floor === undefined || call.position.offset >= floor;
        const retentionMs = Math.max(opts.windowMs, opts.tailGraceMs);
        opts.ended.put(
          call,
          uncommitted ? now + retentionMs : call.finishedAt + retentionMs,
          uncommitted,
        );
        kept++;
      }
    }
    opts.logger.info("changelog restored", {
      topic: changelog.topic,
      partitions: parts.map((tp) => tp.partition),
      entries: result.entries,
      bytes: result.bytes,
      kept,
      leases: Object.fromEntries([...result.leases].map(([p, end]) => [p, String(end)])),
      durationMs: Math.round(result.durationMs),
    });
  }
}

/** What a restored entry says about its call, as this process would have kept it. */
export function endedFromRestored(
  restored: RestoredCall,
  topic: string,
  partition: number,
): EndedCall {
  const { entry } = restored;
  const reply = entry.reply;
  return {
    id: restored.id,
    kind:
      entry.kind === "started"
        ? "interrupted"
        : entry.kind === "finished"
          ? "replayable"
          : "unsettled",
    replyTo: reply?.replyTo ?? "",
    keyed: entry.keyed,
    attempt: entry.attempt,
    reply: reply?.records,
    tooLarge: reply !== undefined && reply.records === undefined,
    replyBytes: reply?.replyBytes ?? 0,
    // A kept reply may not have been written (FINISHED goes first); one not kept was.
    replyWritten: reply?.records === undefined,
    position: { topic, partition, offset: entry.requestOffset },
    finishedAt: restored.writtenAtMs,
    requestEnded: entry.requestEnded || entry.kind === "started",
    tail: [],
    duplicateOpen: false,
    duplicate: [],
    settling: undefined,
  };
}
