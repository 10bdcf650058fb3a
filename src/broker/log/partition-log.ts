/**
 * One partition's log, in memory: record batches stored as received (copied once into
 * reused memory, batch-arena.ts; large ones kept as apis/produce.ts hands them over), with
 * broker-assigned base offsets, a time index, retention by size and age, compaction for
 * compacted topics (compaction.ts), idempotent-producer checks, and wake-ups for fetches
 * long-polling on new data.
 */
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  type BatchHeader,
  MAX_TIMESTAMP_AT,
  setBatchBaseOffset,
} from "../../kafka/protocol/record-batch.ts";
import { ARENA_MAX_BATCH_BYTES, type ArenaChunk, ArenaCursor, BatchArena } from "./batch-arena.ts";
import { compactBatches, recordSpans } from "./compaction.ts";
import { ProducerSequences } from "./producer-sequences.ts";

/** A batch in the log. */
export interface StoredBatch {
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  /** Largest maxTimestamp up to and including this batch: never decreases, so searchable. */
  timeIndex: number;
  /** Broker clock at append; age retention uses it so client clocks cannot expire fresh data. */
  appendTimeMs: number;
  bytes: Uint8Array;
  /** The arena chunk holding `bytes`, released when the batch is dropped. */
  chunk: ArenaChunk | undefined;
}

/** Outcome of an append: the offset of the batch's first record, or an error code. */
export interface AppendResult {
  errorCode: number;
  baseOffset: number;
}

/** Limits for one partition; absent means unlimited. */
export interface RetentionLimits {
  retentionBytes?: number;
  retentionMs?: number;
}

/** The batches a read returned and their total size. */
export interface ReadResult {
  batches: Uint8Array[];
  sizeBytes: number;
}

/** A topic's cleanup.policy: with `compact`, only the latest record of each key stays. */
export interface CleanupPolicy {
  compact: boolean;
}

const EMPTY_READ: ReadResult = { batches: [], sizeBytes: 0 };
/**
 * A compacted log is compacted once it gained at least this many batches, and at least as
 * many as it kept at the last compaction (so each batch is rewritten a bounded number of
 * times on average, like Kafka's min.cleanable.dirty.ratio of 0.5).
 */
const MIN_DIRTY_BATCHES = 64;
/** Dropped head entries are compacted away once there are this many. */
const COMPACT_AFTER = 1024;

/** The in-memory log of one topic partition. */
export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the first record still held. */
  logStartOffset = 0;
  /** Offset the next record gets; every record below it is committed (single replica). */
  highWatermark = 0;
  /** Bytes held, batch headers included. */
  sizeBytes = 0;
  /** Set when the topic is deleted; waiters are woken so their fetches can answer. */
  closed = false;
  /** Whether the topic is compacted (cleanup.policy=compact). */
  readonly compacted: boolean;

  private readonly limits: RetentionLimits;
  private readonly now: () => number;
  private readonly sequences = new ProducerSequences();
  private batches: (StoredBatch | undefined)[] = [];
  /** Index of the first live batch in `batches` (retention drops from the head). */
  private head = 0;
  private readonly waiters = new Set<() => void>();
  private notifyScheduled = false;
  /** Batches appended since the last compaction, and batches that compaction kept. */
  private dirtyBatches = 0;
  private cleanBatches = 0;
  private readonly memory: ArenaCursor;

  constructor(
    topic: string,
    partition: number,
    limits: RetentionLimits = {},
    now = Date.now,
    policy: CleanupPolicy = { compact: false },
    arena: BatchArena = new BatchArena(),
  ) {
    this.memory = new ArenaCursor(arena);
    this.topic = topic;
    this.partition = partition;
    this.limits = limits;
    this.now = now;
    this.compacted = policy.compact;
  }

  /** Number of batches held. */
  get batchCount(): number {
    return this.batches.length - this.head;
  }

  /**
   * Appends a checked batch and rewrites its base offset in what is stored. A batch under
   * ARENA_MAX_BATCH_BYTES is copied into the log's arena memory; a larger one is kept as it
   * is when `owned` (the caller hands it over, e.g. a view of a request alone in its array),
   * else copied out so the log pins nothing else of `batch`'s array. A retried idempotent
   * batch is not appended again: the answer is its original offset.
   */
  append(batch: Uint8Array, header: BatchHeader, owned = true): AppendResult {
    const verdict = this.sequences.check(header);
    if (verdict.kind === "error") return { errorCode: verdict.errorCode, baseOffset: -1 };
    if (verdict.kind === "duplicate") {
      return { errorCode: ErrorCode.NONE, baseOffset: verdict.baseOffset };
    }
    let bytes = batch;
    let chunk: ArenaChunk | undefined;
    if (batch.length < ARENA_MAX_BATCH_BYTES) ({ bytes, chunk } = this.memory.copy(batch));
    else if (!owned) bytes = batch.slice();
    const baseOffset = this.highWatermark;
    setBatchBaseOffset(bytes, baseOffset);
    const previous = this.batches[this.batches.length - 1];
    const timeIndex =
      previous !== undefined && this.batchCount > 0
        ? Math.max(previous.timeIndex, header.maxTimestamp)
        : header.maxTimestamp;
    this.batches.push({
      baseOffset,
      lastOffset: baseOffset + header.lastOffsetDelta,
      maxTimestamp: header.maxTimestamp,
      timeIndex,
      appendTimeMs: this.now(),
      bytes,
      chunk,
    });
    this.highWatermark = baseOffset + header.lastOffsetDelta + 1;
    this.sizeBytes += bytes.length;
    this.sequences.record(header, baseOffset);
    this.enforceRetention();
    if (this.compacted && ++this.dirtyBatches >= Math.max(MIN_DIRTY_BATCHES, this.cleanBatches)) {
      this.compact();
    }
    this.scheduleNotify();
    return { errorCode: ErrorCode.NONE, baseOffset };
  }

  /**
   * Reads whole batches starting with the first that ends at or after `offset` (the one that
   * holds it, or the next one where compaction left a gap), while they fit in
   * `maxBytes`; with `minOneBatch` the first batch comes even when it alone is bigger, so a
   * client always makes progress. `offset` must lie in [logStartOffset, highWatermark].
   */
  read(offset: number, maxBytes: number, minOneBatch: boolean): ReadResult {
    let index = this.indexOf(offset);
    if (index < 0) return EMPTY_READ;
    const batches: Uint8Array[] = [];
    let sizeBytes = 0;
    for (; index < this.batches.length; index++) {
      const bytes = (this.batches[index] as StoredBatch).bytes;
      if (sizeBytes + bytes.length > maxBytes && !(minOneBatch && batches.length === 0)) break;
      batches.push(bytes);
      sizeBytes += bytes.length;
    }
    return batches.length === 0 ? EMPTY_READ : { batches, sizeBytes };
  }

  /** Bytes from the batch `read` would start with to the end of the log (for MinBytes checks). */
  bytesFrom(offset: number): number {
    const index = this.indexOf(offset);
    if (index < 0) return 0;
    let total = 0;
    for (let i = index; i < this.batches.length; i++) {
      total += (this.batches[i] as StoredBatch).bytes.length;
    }
    return total;
  }

  /**
   * The first record whose timestamp is at or after `timestamp` (Kafka's ListOffsets by
   * time): its offset and timestamp, or null when every record is older. In a batch whose
   * records cannot be read here (compressed), the batch's base offset and max timestamp.
   */
  offsetForTimestamp(timestamp: number): { offset: number; timestamp: number } | null {
    let lo = this.head;
    let hi = this.batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.batches[mid] as StoredBatch).timeIndex < timestamp) lo = mid + 1;
      else hi = mid;
    }
    const found = this.batches[lo];
    if (found === undefined) return null;
    // The batch's max timestamp is at or after `timestamp`, so one of its records is too.
    const record = recordSpans(found.bytes)?.find((r) => r.timestamp >= timestamp);
    return record
      ? { offset: record.offset, timestamp: record.timestamp }
      : { offset: found.baseOffset, timestamp: found.maxTimestamp };
  }

  /**
   * Compacts the log now: of the records that share a key, only the latest stays (see
   * compaction.ts for what differs from Kafka). Offsets, the log start and the high
   * watermark do not change.
   */
  compact(): void {
    const live = this.batches.slice(this.head) as StoredBatch[];
    const compacted = compactBatches(live.map((b) => b.bytes));
    const kept: StoredBatch[] = [];
    let sizeBytes = 0;
    let timeIndex = Number.NEGATIVE_INFINITY;
    live.forEach((batch, i) => {
      const bytes = compacted[i];
      if (bytes !== batch.bytes && batch.chunk !== undefined) {
        this.memory.release(batch.chunk, batch.bytes.length);
      }
      if (bytes === null || bytes === undefined) return;
      const maxTimestamp = bytes === batch.bytes ? batch.maxTimestamp : batchMaxTimestamp(bytes);
      timeIndex = Math.max(timeIndex, maxTimestamp);
      const chunk = bytes === batch.bytes ? batch.chunk : undefined;
      kept.push({ ...batch, maxTimestamp, timeIndex, bytes, chunk });
      sizeBytes += bytes.length;
    });
    // Survivors move into the current chunk when theirs is mostly empty or they were
    // rewritten (a fresh array), so the chunks compaction thinned out are freed whole.
    for (const batch of kept) {
      const from = batch.chunk;
      if (
        from === undefined
          ? batch.bytes.length >= ARENA_MAX_BATCH_BYTES
          : !this.memory.isSparse(from)
      ) {
        continue;
      }
      const moved = this.memory.copy(batch.bytes);
      if (from !== undefined) this.memory.release(from, batch.bytes.length);
      batch.bytes = moved.bytes;
      batch.chunk = moved.chunk;
    }
    this.batches = kept;
    this.head = 0;
    this.sizeBytes = sizeBytes;
    this.dirtyBatches = 0;
    this.cleanBatches = kept.length;
  }

  /** Drops whole batches from the head that exceed the size or age limit. */
  enforceRetention(now = this.now()): void {
    const { retentionBytes, retentionMs } = this.limits;
    let dropped = false;
    if (retentionMs !== undefined) {
      const cutoff = now - retentionMs;
      for (;;) {
        const first = this.batches[this.head];
        if (first === undefined || first.appendTimeMs >= cutoff) break;
        this.dropHead();
        dropped = true;
      }
    }
    if (retentionBytes !== undefined) {
      // Keep the newest batch, like Kafka never deleting the active segment by size.
      while (this.sizeBytes > retentionBytes && this.batchCount > 1) {
        this.dropHead();
        dropped = true;
      }
    }
    if (dropped && this.head >= COMPACT_AFTER && this.head * 2 >= this.batches.length) {
      this.batches = this.batches.slice(this.head);
      this.head = 0;
    }
  }

  /** Calls `waiter` (on a later microtask) after every append until removed. */
  addWaiter(waiter: () => void): void {
    this.waiters.add(waiter);
  }

  removeWaiter(waiter: () => void): void {
    this.waiters.delete(waiter);
  }

  /** Marks the log deleted and wakes its waiters. */
  close(): void {
    this.closed = true;
    this.scheduleNotify();
  }

  private dropHead(): void {
    const first = this.batches[this.head] as StoredBatch;
    this.sizeBytes -= first.bytes.length;
    if (first.chunk !== undefined) this.memory.release(first.chunk, first.bytes.length);
    // Release the bytes now; the slot itself is reclaimed by the next compaction.
    this.batches[this.head] = undefined;
    this.head++;
    const next = this.batches[this.head];
    this.logStartOffset = next === undefined ? this.highWatermark : next.baseOffset;
    if (this.head === this.batches.length) {
      this.batches = [];
      this.head = 0;
    }
  }

  /**
   * Index of the first batch that ends at or after `offset` (the batch holding it, unless
   * compaction removed that record), or -1 when none does (offset at or past the end).
   */
  private indexOf(offset: number): number {
    if (offset < this.logStartOffset || offset >= this.highWatermark) return -1;
    let lo = this.head;
    let hi = this.batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.batches[mid] as StoredBatch).lastOffset < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.batches.length ? lo : -1;
  }

  /** Wakes waiters once per microtask, however many batches a request appended. */
  private scheduleNotify(): void {
    if (this.notifyScheduled || this.waiters.size === 0) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      for (const waiter of [...this.waiters]) waiter();
    });
  }
}

function batchMaxTimestamp(batch: Uint8Array): number {
  return Number(new DataView(batch.buffer, batch.byteOffset).getBigInt64(MAX_TIMESTAMP_AT));
}
