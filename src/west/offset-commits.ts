/**
 * West's offset commits (docs/contract.md: West, difference 6): a tracker per assigned partition (commit-tracker.ts)
 * that every consumed record joins as part of a call's span, and commits of what is done,
 * gathered: a commit is a Kafka round trip, and under load one per call would cost as much
 * as the call. Finished calls are committed together a moment later; a commit while one is
 * under way waits for it and then covers everything done by then.
 */
import type { CommitOffset, TopicPartition } from "../kafka/group-consumer.ts";
import type { Logger } from "../ops/logger.ts";
import { createPartitionTracker, type PartitionTracker } from "./commit-tracker.ts";
import { type SpanRef, tpKey } from "./west-call.ts";

export interface OffsetCommits {
  /** The tracker of a record's partition (made on its first record). */
  trackerFor(tp: TopicPartition): PartitionTracker;
  /** Whether `tracker` is still the one of partition `key` (not revoked since). */
  isCurrent(key: string, tracker: PartitionTracker): boolean;
  /** Adds a record to the spans of one call (one span per partition tracker). */
  attach(spans: SpanRef[], tracker: PartitionTracker, offset: bigint): void;
  /** Marks a call's spans done (its reply was acknowledged); a commit follows soon. */
  complete(spans: readonly SpanRef[]): void;
  /** A record done with at once (it needed no call). */
  skip(tracker: PartitionTracker, offset: bigint): void;
  /** Commits soon, together with whatever else finishes meanwhile. */
  schedule(): void;
  /** Commits everything done so far; resolves once that commit was answered. */
  commitNow(): Promise<void>;
  /** A new assignment: revoked partitions' trackers go (their offsets are the new owner's). */
  assign(assignment: readonly TopicPartition[]): void;
  /** No more commits (a crash). */
  stop(): void;
}

export interface OffsetCommitsOptions {
  commit(offsets: CommitOffset[]): Promise<void>;
  /** How long finished calls wait to be committed together (default 100 ms). */
  commitDelayMs?: number;
  logger: Logger;
  /** After a commit was accepted, per partition. */
  onCommitted?(tp: TopicPartition, offset: bigint): void;
}

/** Trackers and commits for one group member. */
export function createOffsetCommits(opts: OffsetCommitsOptions): OffsetCommits {
  const trackers = new Map<string, PartitionTracker>();
  const committed = new Map<string, bigint>();
  let assigned: readonly TopicPartition[] = [];
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  let scheduled = false;
  const delayMs = opts.commitDelayMs ?? 100;
  // The last partition's tracker: records come in runs of one partition.
  let last: { topic: string; partition: number; tracker: PartitionTracker } | undefined;

  const doCommit = async () => {
    if (stopped) return;
    const offsets: CommitOffset[] = [];
    for (const tp of assigned) {
      const key = tpKey(tp);
      const tracker = trackers.get(key);
      if (!tracker) continue;
      const cut = tracker.committable();
      if (cut > (committed.get(key) ?? -1n)) offsets.push({ ...tp, offset: cut });
    }
    if (offsets.length === 0) return;
    try {
      await opts.commit(offsets);
      for (const o of offsets) {
        const key = tpKey(o);
        committed.set(key, o.offset);
        opts.onCommitted?.(o, o.offset);
      }
    } catch (err) {
      // A commit refused mid-rebalance is retried by the next one; nothing is lost.
      opts.logger.debug("offset commit failed", { error: err });
    }
  };

  const commitNow = (): Promise<void> => {
    if (queued) return queued;
    const next = running.then(() => {
      queued = undefined;
      running = doCommit();
      return running;
    });
    queued = next;
    return next;
  };

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      void commitNow();
    }, delayMs).unref?.();
  };

  return {
    trackerFor(tp) {
      const seen = last;
      if (seen && seen.partition === tp.partition && seen.topic === tp.topic) return seen.tracker;
      const key = tpKey(tp);
      let tracker = trackers.get(key);
      if (!tracker) {
        tracker = createPartitionTracker();
        trackers.set(key, tracker);
      }
      last = { topic: tp.topic, partition: tp.partition, tracker };
      return tracker;
    },
    isCurrent: (key, tracker) => trackers.get(key) === tracker,
    attach(spans, tracker, offset) {
      const ref = spans.find((s) => s.tracker === tracker && !s.span.done);
      if (ref) tracker.extend(ref.span, offset);
      else spans.push({ tracker, span: tracker.open(offset) });
    },
    complete(spans) {
      for (const ref of spans) ref.span.done = true;
      if (spans.length > 0) schedule();
    },
    skip(tracker, offset) {
      tracker.open(offset).done = true;
      schedule();
    },
    schedule,
    commitNow,
    assign(assignment) {
      last = undefined;
      const keep = new Set(assignment.map(tpKey));
      for (const key of [...trackers.keys()]) {
        if (keep.has(key)) continue;
        trackers.delete(key);
        committed.delete(key);
      }
      assigned = assignment;
      schedule();
    },
    stop() {
      stopped = true;
    },
  };
}
