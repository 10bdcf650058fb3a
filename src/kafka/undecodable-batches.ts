/**
 * What the gateway does with a record batch it cannot decode (corrupt, an unknown codec,
 * broken records, an old message format, over the decompression bound), like Kafka Streams'
 * deserialization exception handlers:
 * - `fail` (the default): the partition is held at that batch. Nothing of it or after it is
 *   handed on, so west never commits past it; the batch is logged (error, topic, partition,
 *   offset, reason) when first met and again at most once a minute while held, counted, and
 *   `/readyz` names the partition until the reader holding it stops.
 * - `skip`: the batch's offsets are logged (warn, topic, partition, offset range, reason),
 *   counted, and reading goes on after it.
 * One watch per gateway; every partition reader reports through a reporter of its own.
 */
import type { Logger } from "../ops/logger.ts";

export const undecodablePolicies = ["fail", "skip"] as const;
export type UndecodablePolicy = (typeof undecodablePolicies)[number];

/** A batch one reader could not decode. */
export interface UndecodableEvent {
  topic: string;
  partition: number;
  /** The batch's first offset. */
  baseOffset: number;
  /** The last offset it covers (as far as its header can be trusted). */
  lastOffset: number;
  reason: string;
}

/** A partition held now. */
export interface HeldPartition {
  reader: string;
  topic: string;
  partition: number;
  offset: number;
  reason: string;
}

/** How one partition reader reports; `policy` tells it whether to hold or skip. */
export interface UndecodableReporter {
  readonly policy: UndecodablePolicy;
  /** The reader holds the partition at this batch. */
  held(event: UndecodableEvent): void;
  /** The reader skipped this batch. */
  skipped(event: UndecodableEvent): void;
  /** The reader no longer holds the partition (it was sought elsewhere). */
  released(topic: string, partition: number): void;
  /** The reader stopped: it holds nothing any more. */
  close(): void;
}

/** Where the watch counts (the gateway's metrics). */
export interface UndecodableMetrics {
  batch(topic: string, partition: number, action: "held" | "skipped"): void;
  skippedOffsets(topic: string, partition: number, count: number): void;
  holding(reader: string, topic: string, partition: number, held: boolean): void;
}

export interface UndecodableWatch {
  readonly policy: UndecodablePolicy;
  /** A reporter for one reader, named in logs and in `/readyz` (e.g. "west group g1"). */
  reporter(reader: string): UndecodableReporter;
  /** The partitions held now. */
  held(): HeldPartition[];
  /** Stops the reminder timer. */
  close(): void;
}

export interface UndecodableWatchOptions {
  policy: UndecodablePolicy;
  logger: Logger;
  metrics?: UndecodableMetrics;
  /** Called whenever the set of held partitions changes. */
  onChange?(held: readonly HeldPartition[]): void;
  /** How often a batch still held is logged again (default 60 s). */
  remindEveryMs?: number;
}

/** Creates the gateway's watch over undecodable batches. */
export function createUndecodableWatch(options: UndecodableWatchOptions): UndecodableWatch {
  const { policy, logger, metrics } = options;
  const remindEveryMs = options.remindEveryMs ?? 60_000;
  // Held partitions by reporter instance and partition.
  const holds = new Map<string, HeldPartition>();
  // When each batch (topic, partition, offset) was last logged as held: another reader, or
  // the same after a rebalance, meeting it again logs it at most once per interval.
  const loggedAt = new Map<string, number>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let nextId = 0;

  const logHeld = (h: HeldPartition, still: boolean) => {
    logger.error(
      still
        ? "partition still held at an undecodable record batch"
        : "undecodable record batch: partition held (nothing after it is read or committed)",
      {
        reader: h.reader,
        topic: h.topic,
        partition: h.partition,
        offset: h.offset,
        reason: h.reason,
        policy,
      },
    );
    loggedAt.set(`${h.topic}\0${h.partition}\0${h.offset}`, Date.now());
  };

  const changed = () => {
    if (holds.size > 0 && !timer) {
      timer = setInterval(() => {
        const now = Date.now();
        for (const h of holds.values()) {
          const last = loggedAt.get(`${h.topic}\0${h.partition}\0${h.offset}`) ?? 0;
          if (now - last >= remindEveryMs) logHeld(h, true);
        }
      }, remindEveryMs);
      timer.unref?.();
    } else if (holds.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
    // Kept across a release (a rebalance stops one reader and starts the next, which meets
    // the batch again): only entries past the interval go.
    const now = Date.now();
    for (const [key, at] of loggedAt) if (now - at >= remindEveryMs) loggedAt.delete(key);
    options.onChange?.([...holds.values()]);
  };

  const release = (key: string) => {
    const h = holds.get(key);
    if (!h) return;
    holds.delete(key);
    // Another reader may hold the same partition still: the gauge says so while any does.
    const stillHeld = [...holds.values()].some(
      (o) => o.reader === h.reader && o.topic === h.topic && o.partition === h.partition,
    );
    if (!stillHeld) metrics?.holding(h.reader, h.topic, h.partition, false);
  };

  return {
    policy,
    reporter(reader) {
      const id = nextId++;
      const keyOf = (topic: string, partition: number) => `${id}\0${topic}\0${partition}`;
      const mine = new Set<string>();
      return {
        policy,
        held(event) {
          const h: HeldPartition = {
            reader,
            topic: event.topic,
            partition: event.partition,
            offset: event.baseOffset,
            reason: event.reason,
          };
          const key = keyOf(event.topic, event.partition);
          holds.set(key, h);
          mine.add(key);
          metrics?.batch(event.topic, event.partition, "held");
          metrics?.holding(reader, event.topic, event.partition, true);
          const last = loggedAt.get(`${h.topic}\0${h.partition}\0${h.offset}`);
          if (last === undefined || Date.now() - last >= remindEveryMs) logHeld(h, false);
          changed();
        },
        skipped(event) {
          logger.warn("undecodable record batch skipped (policy skip): its records are lost", {
            reader,
            topic: event.topic,
            partition: event.partition,
            fromOffset: event.baseOffset,
            toOffset: event.lastOffset,
            reason: event.reason,
          });
          metrics?.batch(event.topic, event.partition, "skipped");
          metrics?.skippedOffsets(
            event.topic,
            event.partition,
            event.lastOffset - event.baseOffset + 1,
          );
        },
        released(topic, partition) {
          const key = keyOf(topic, partition);
          if (!mine.delete(key)) return;
          release(key);
          changed();
        },
        close() {
          if (mine.size === 0) return;
          for (const key of mine) release(key);
          mine.clear();
          changed();
        },
      };
    },
    held: () => [...holds.values()],
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}

/** The `/readyz` reason for the held partitions (empty when none is held). */
export function heldPartitionsReason(held: readonly HeldPartition[]): string {
  return held
    .map(
      (h) =>
        `${h.topic}-${h.partition} held at offset ${h.offset} by ${h.reader} (undecodable batch: ${h.reason})`,
    )
    .join("; ");
}
