/**
 * Which offset of one partition west may commit (docs/contract.md: West, difference 6). Every consumed record
 * belongs to a span: the offsets of one call's records (first..last), or a single record
 * that needed no call. A span is done once its reply was acknowledged by Kafka.
 *
 * The committable offset is the highest cut that (a) has every record below it done and
 * (b) splits no span. (a) is the contract's rule: never commit past an in-flight record. (b)
 * keeps a crash from re-delivering the tail of a call without its head: a lone request end
 * tombstone would otherwise start a fresh client-stream call with no messages upstream.
 */

/** The offsets of one call's records on a partition. */
export interface OffsetSpan {
  readonly first: bigint;
  last: bigint;
  done: boolean;
}

export interface PartitionTracker {
  /** Highest offset handed to the tracker so far (-1 before the first). */
  readonly lastSeen: bigint;
  /** Whether the record at `offset` was already handed over (a re-delivery after a rejoin). */
  seen(offset: bigint): boolean;
  /** Starts a span at `offset` (offsets arrive in increasing order). */
  open(offset: bigint): OffsetSpan;
  /** Adds a later record of the same call to an open span. */
  extend(span: OffsetSpan, offset: bigint): void;
  /** The offset safe to commit now (the next offset to read after a restart). */
  committable(): bigint;
  /** Spans held: the first still in flight and those after it, and any not yet looked at. */
  readonly size: number;
}

/**
 * A tracker for one partition whose records start at any offset. The spans before the first
 * call still in flight are looked at once: a done span is folded into the cut found so far
 * (`best`) and the highest offset any span before it reaches (`maxLast`), then dropped. Streams
 * whose records interleave can leave no valid cut for a long time; scanning every span since
 * the last one on each commit cost west 2 % of its time after 20 s of bidi calls at c=64 (and
 * kept every span), and grows without bound under steady load.
 */
export function createPartitionTracker(): PartitionTracker {
  // Spans from `head` on: not yet looked at, or the first in flight and those after it.
  let spans: OffsetSpan[] = [];
  let head = 0;
  let lastSeen = -1n;
  // Over the done spans already dropped: the highest valid cut, and the last offset reached.
  let best = -1n;
  let maxLast = -1n;

  const see = (offset: bigint) => {
    if (offset > lastSeen) lastSeen = offset;
  };

  return {
    get lastSeen() {
      return lastSeen;
    },
    get size() {
      return spans.length - head;
    },
    seen(offset) {
      return offset <= lastSeen;
    },
    open(offset) {
      see(offset);
      const span: OffsetSpan = { first: offset, last: offset, done: false };
      spans.push(span);
      return span;
    },
    extend(span, offset) {
      see(offset);
      if (offset > span.last) span.last = offset;
    },
    committable() {
      let cut = lastSeen + 1n;
      for (; head < spans.length; head++) {
        const span = spans[head] as OffsetSpan;
        // A cut at this span's first offset is valid when no earlier span reaches it.
        if (maxLast < span.first) best = span.first;
        if (!span.done) {
          cut = best;
          break;
        }
        // Done spans never change again: a call's later records open a new span.
        if (span.last > maxLast) maxLast = span.last;
      }
      // The spans looked at are dropped, whether or not the cut is committed: a commit needs
      // nothing more from the tracker.
      if (head > 1024 && head * 2 > spans.length) {
        spans = spans.slice(head);
        head = 0;
      }
      return cut;
    },
  };
}
