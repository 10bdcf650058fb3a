/**
 * Restores what the changelog knows about newly assigned request partitions before their
 * records are handed on (docs/idempotency.md, "Restore"): each changelog partition is read
 * from the start of the idempotency window to its end at restore start, the latest entry per
 * correlation id wins, and only what can matter is kept:
 *
 * - an entry about a call whose request records are not all committed yet (they come back
 *   as re-deliveries), whatever its age;
 * - a keyed entry (the request carried the idempotency metadata) inside the window
 *   (duplicates with the same key may still come);
 * - nothing else: un-keyed calls below the committed offset can never be seen again.
 *
 * And the partition's lease: the furthest offset a LEASE entry names (a request below it
 * with no entry of its own may have been started once).
 *
 * The read starts earlier than the window where the request partition has records not yet
 * committed that are older than the window (west was down longer than it): at the time the
 * first of them was written, less `clockSkewMs` (their entries were written after west read
 * them). Where the broker finds no offset for the start time (ListOffsets by timestamp
 * answers -1 or is refused), the partition is read from its earliest offset, same rules.
 */
import { KafkaCluster } from "../kafka/client/kafka-cluster.ts";
import { type PartitionReader, startPartitionReader } from "../kafka/client/partition-reader.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import type { FetchedRecord } from "../kafka/protocol/record-codec.ts";
import { utf8 } from "../kafka/protocol/record-codec.ts";
import type { Logger } from "../ops/logger.ts";
import { type ChangelogEntry, decodeEntry, decodeEntryHead } from "./changelog-codec.ts";

/** The latest entry about one call. */
export interface RestoredCall {
  id: string;
  entry: ChangelogEntry;
  /** When the entry was written (the record's timestamp), epoch ms. */
  writtenAtMs: number;
}

/** The rules an entry is kept or dropped by. */
export interface RestoreRules {
  /** Entries written before this (epoch ms) matter only for uncommitted records. */
  windowStartMs: number;
  /** The request partition's committed offset (next to read); undefined: nothing committed. */
  committed: bigint | undefined;
}

/** Folds changelog records of one partition, in offset order, into the calls they describe. */
export interface RestoreFold {
  add(record: FetchedRecord): void;
  /** The calls to keep, in the order their latest entries were written. */
  calls(): RestoredCall[];
  /** The end of the partition's lease, when a LEASE entry was read. */
  lease(): bigint | undefined;
  readonly entries: number;
  readonly bytes: number;
  /** Entries that could not be decoded (skipped). */
  readonly broken: number;
}

/** A fold applying `rules`; entries of a later codec version are skipped. */
export function createRestoreFold(rules: RestoreRules): RestoreFold {
  const kept = new Map<string, RestoredCall>();
  let entries = 0;
  let bytes = 0;
  let broken = 0;
  let lease: bigint | undefined;
  const matters = (keyed: boolean, requestOffset: bigint, writtenAtMs: number): boolean => {
    const uncommitted = rules.committed === undefined || requestOffset >= rules.committed;
    return uncommitted || (keyed && writtenAtMs >= rules.windowStartMs);
  };
  return {
    add(record) {
      entries++;
      bytes += record.value?.byteLength ?? 0;
      if (record.key === null) return;
      // The lease's key is empty, which no call's is: a lease is not about a call.
      if (record.key.byteLength === 0) {
        if (record.value === null) return;
        try {
          const head = decodeEntryHead(record.value);
          if (head?.kind !== "lease") return;
          if (lease === undefined || head.requestOffset > lease) lease = head.requestOffset;
        } catch {
          broken++;
        }
        return;
      }
      const id = utf8(record.key);
      // The latest entry decides: whatever an earlier one said is replaced or dropped.
      kept.delete(id);
      if (record.value === null) return;
      try {
        const head = decodeEntryHead(record.value);
        if (!head || !matters(head.keyed, head.requestOffset, record.timestamp)) return;
        const entry = decodeEntry(record.value, id);
        if (entry) kept.set(id, { id, entry, writtenAtMs: record.timestamp });
      } catch {
        broken++;
      }
    },
    calls: () => [...kept.values()],
    lease: () => lease,
    get entries() {
      return entries;
    },
    get bytes() {
      return bytes;
    },
    get broken() {
      return broken;
    },
  };
}

export interface RestorePartition {
  /** The request partition (= changelog partition). */
  partition: number;
  committed: bigint | undefined;
}

export interface RestoreOptions {
  kafka: Kafka;
  changelog: string;
  /** The request topic the changelog records (its uncommitted records' age matters). */
  requestTopic?: string;
  /** How far producers' and west's clocks may disagree (default 60 s). */
  clockSkewMs?: number;
  partitions: readonly RestorePartition[];
  windowMs: number;
  logger: Logger;
  now?: () => number;
  /** Longest a Fetch waits at the broker (default 200 ms). */
  maxWaitMs?: number;
}

export interface RestoreResult {
  /** Kept calls by request partition. */
  calls: Map<number, RestoredCall[]>;
  /** Lease ends by request partition, where a LEASE entry was read. */
  leases: Map<number, bigint>;
  entries: number;
  bytes: number;
  durationMs: number;
}

/** Reads the changelog partitions to their ends at restore start; see the file comment. */
export async function restoreChangelog(opts: RestoreOptions): Promise<RestoreResult> {
  const startedAt = performance.now();
  const now = opts.now ?? Date.now;
  const windowStartMs = now() - opts.windowMs;
  const cluster = new KafkaCluster(opts.kafka.wire);
  const calls = new Map<number, RestoredCall[]>();
  const leases = new Map<number, bigint>();
  const folds = new Map<number, RestoreFold>();
  try {
    const starts = new Map(opts.partitions.map((p) => [p.partition, windowStartMs]));
    if (opts.requestTopic !== undefined) {
      const since = await uncommittedSince(cluster, opts.requestTopic, opts.partitions);
      for (const [partition, ms] of since) {
        const fromMs = ms - (opts.clockSkewMs ?? 60_000);
        if (fromMs < windowStartMs) starts.set(partition, fromMs);
      }
    }
    const ranges = await readRanges(cluster, opts.changelog, starts);
    const positions = new Map<string, number>();
    const ends = new Map<number, number>();
    for (const p of opts.partitions) {
      const range = ranges.get(p.partition);
      folds.set(p.partition, createRestoreFold({ windowStartMs, committed: p.committed }));
      if (!range || range.start >= range.end) continue;
      positions.set(`${opts.changelog}\0${p.partition}`, range.start);
      ends.set(p.partition, range.end);
    }
    if (ends.size > 0) await readToEnds(cluster, opts, positions, ends, folds);
  } finally {
    cluster.close();
  }
  let entries = 0;
  let bytes = 0;
  for (const [partition, fold] of folds) {
    calls.set(partition, fold.calls());
    const lease = fold.lease();
    if (lease !== undefined) leases.set(partition, lease);
    entries += fold.entries;
    bytes += fold.bytes;
    if (fold.broken > 0) {
      opts.logger.warn("changelog entries not decodable, skipped", {
        topic: opts.changelog,
        partition,
        entries: fold.broken,
      });
    }
  }
  return { calls, leases, entries, bytes, durationMs: performance.now() - startedAt };
}

/** Where each partition's read starts (its start time) and ends (its end now). */
async function readRanges(
  cluster: KafkaCluster,
  topic: string,
  startsMs: ReadonlyMap<number, number>,
): Promise<Map<number, { start: number; end: number }>> {
  const out = new Map<number, { start: number; end: number }>();
  const partitions = [...startsMs.keys()];
  if (partitions.length === 0) return out;
  const [ends, earliest] = await Promise.all([
    cluster.listOffsets(topic, partitions, -1),
    cluster.listOffsets(topic, partitions, -2),
  ]);
  const byTime = await Promise.all(
    partitions.map((p) =>
      cluster
        .listOffsets(topic, [p], Math.max(0, startsMs.get(p) ?? 0))
        .catch(() => [{ topic, partition: p, offset: -1 }]),
    ),
  );
  for (const { partition, offset: end } of ends) {
    const first = earliest.find((o) => o.partition === partition)?.offset ?? 0;
    const found = byTime.flat().find((o) => o.partition === partition)?.offset ?? -1;
    // -1: no record at or after the start time, or a broker that does not look up by time:
    // read from the earliest offset (the fold drops what is too old).
    const start = found >= first ? found : first;
    out.set(partition, { start, end });
  }
  return out;
}

/**
 * When the oldest request record not yet committed was written, per partition that has one
 * (its timestamp; the group re-delivers from the committed offset, or from the earliest
 * offset when nothing is committed).
 */
async function uncommittedSince(
  cluster: KafkaCluster,
  topic: string,
  partitions: readonly RestorePartition[],
): Promise<Map<number, number>> {
  const numbers = partitions.map((p) => p.partition);
  const [ends, earliest] = await Promise.all([
    cluster.listOffsets(topic, numbers, -1),
    cluster.listOffsets(topic, numbers, -2),
  ]);
  const positions = new Map<string, number>();
  for (const p of partitions) {
    const first = earliest.find((o) => o.partition === p.partition)?.offset ?? 0;
    const end = ends.find((o) => o.partition === p.partition)?.offset ?? 0;
    const from = Math.max(first, p.committed === undefined ? 0 : Number(p.committed));
    if (from < end) positions.set(`${topic}\0${p.partition}`, from);
  }
  const out = new Map<number, number>();
  if (positions.size === 0) return out;
  let finish: () => void = () => {};
  // Records deleted meanwhile would leave nothing to read: the window's start then stands.
  const done = new Promise<void>((resolve) => {
    finish = resolve;
    setTimeout(resolve, 10_000).unref?.();
  });
  let reader: PartitionReader | undefined;
  reader = await startPartitionReader({
    cluster,
    topics: [topic],
    assigned: [...positions.keys()].map((key) => ({
      topic,
      partition: Number(key.split("\0")[1]),
    })),
    positions,
    start: "earliest",
    maxWaitMs: 200,
    partitionMaxBytes: 64 * 1024,
    maxBytes: 1024 * 1024,
    onRecords(_topic, partition, records) {
      const first = records[0];
      if (!first || out.has(partition)) return;
      out.set(partition, first.timestamp);
      reader?.pause([{ topic, partition }]);
      if (out.size === positions.size) finish();
    },
  });
  try {
    await done;
  } finally {
    reader.stop();
  }
  return out;
}

/** Fetches every partition from its position until it reaches its end. */
async function readToEnds(
  cluster: KafkaCluster,
  opts: RestoreOptions,
  positions: Map<string, number>,
  ends: Map<number, number>,
  folds: Map<number, RestoreFold>,
): Promise<void> {
  const topic = opts.changelog;
  const open = new Set(ends.keys());
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let reader: PartitionReader | undefined;
  const reached = (partition: number) => {
    if (!open.delete(partition)) return;
    reader?.pause([{ topic, partition }]);
    if (open.size === 0) finish();
  };
  // Positions also move past records compaction removed, with no records to hand on. (Not
  // from inside onRecords: positions run ahead of the batches still to be handed on.)
  const check = () => {
    const now = reader?.positions();
    if (!now) return;
    for (const partition of open) {
      if ((now.get(`${topic}\0${partition}`) ?? 0) >= (ends.get(partition) ?? 0))
        reached(partition);
    }
  };
  reader = await startPartitionReader({
    cluster,
    topics: [topic],
    assigned: [...open].map((partition) => ({ topic, partition })),
    positions,
    start: "earliest",
    maxWaitMs: opts.maxWaitMs ?? 200,
    partitionMaxBytes: 4 * 1024 * 1024,
    maxBytes: 16 * 1024 * 1024,
    onRecords(_topic, partition, records) {
      const end = ends.get(partition) ?? 0;
      const fold = folds.get(partition);
      for (const record of records) if (record.offset < end) fold?.add(record);
      const last = records.at(-1);
      if (last && last.offset + 1 >= end) reached(partition);
    },
    onProblem: (message, error) =>
      opts.logger.warn(`changelog restore: ${message}`, { topic, error }),
  });
  const timer = setInterval(check, 100);
  check();
  try {
    await done;
  } finally {
    clearInterval(timer);
    reader.stop();
  }
}
