/**
 * Idempotent-producer bookkeeping for one partition: the last sequence number and the
 * last few batches of each producer id, so that a retried batch is recognised as a
 * duplicate (answered with its original offset, not appended again) and a gap is refused.
 */
import { ErrorCode } from "../../kafka/protocol/errors.ts";

/** Kafka keeps this many batches per producer for duplicate detection (max in-flight). */
const RECENT_BATCHES = 5;
/** Bounds memory when many short-lived producers write to one partition. */
const MAX_PRODUCERS = 10_000;
const INT32_MAX = 0x7fffffff;

/** The header fields of a batch that sequence checks look at. */
export interface SequencedBatch {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  lastOffsetDelta: number;
}

/** What to do with a batch: append it, answer with an earlier offset, or refuse it. */
export type SequenceVerdict =
  | { kind: "append" }
  | { kind: "duplicate"; baseOffset: number }
  | { kind: "error"; errorCode: number };

interface RecentBatch {
  firstSequence: number;
  lastSequence: number;
  baseOffset: number;
}

interface ProducerEntry {
  epoch: number;
  lastSequence: number;
  recent: RecentBatch[];
}

const APPEND: SequenceVerdict = { kind: "append" };

/** Sequence numbers wrap from INT32_MAX back to 0. */
function lastSequenceOf(batch: SequencedBatch): number {
  const { baseSequence, lastOffsetDelta } = batch;
  return baseSequence > INT32_MAX - lastOffsetDelta
    ? lastOffsetDelta - (INT32_MAX - baseSequence) - 1
    : baseSequence + lastOffsetDelta;
}

function nextSequence(sequence: number): number {
  return sequence === INT32_MAX ? 0 : sequence + 1;
}

/** Per-partition producer state. */
export class ProducerSequences {
  private readonly producers = new Map<number, ProducerEntry>();

  /** Decides whether the batch may be appended; does not change any state. */
  check(batch: SequencedBatch): SequenceVerdict {
    if (batch.producerId < 0) return APPEND;
    const entry = this.producers.get(batch.producerId);
    if (entry === undefined || batch.producerEpoch > entry.epoch) {
      // A new producer (or a new epoch of one) must start its sequence at zero.
      return batch.baseSequence === 0
        ? APPEND
        : { kind: "error", errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER };
    }
    if (batch.producerEpoch < entry.epoch) {
      return { kind: "error", errorCode: ErrorCode.INVALID_PRODUCER_EPOCH };
    }
    const lastSequence = lastSequenceOf(batch);
    for (const recent of entry.recent) {
      if (recent.firstSequence === batch.baseSequence && recent.lastSequence === lastSequence) {
        return { kind: "duplicate", baseOffset: recent.baseOffset };
      }
    }
    if (batch.baseSequence !== nextSequence(entry.lastSequence)) {
      return { kind: "error", errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER };
    }
    return APPEND;
  }

  /** Records an appended batch. */
  record(batch: SequencedBatch, baseOffset: number): void {
    if (batch.producerId < 0) return;
    let entry = this.producers.get(batch.producerId);
    if (entry === undefined || entry.epoch !== batch.producerEpoch) {
      if (entry === undefined && this.producers.size >= MAX_PRODUCERS) {
        const oldest = this.producers.keys().next().value;
        if (oldest !== undefined) this.producers.delete(oldest);
      }
      entry = { epoch: batch.producerEpoch, lastSequence: -1, recent: [] };
      this.producers.set(batch.producerId, entry);
    }
    const lastSequence = lastSequenceOf(batch);
    entry.lastSequence = lastSequence;
    entry.recent.push({ firstSequence: batch.baseSequence, lastSequence, baseOffset });
    if (entry.recent.length > RECENT_BATCHES) entry.recent.shift();
  }
}
