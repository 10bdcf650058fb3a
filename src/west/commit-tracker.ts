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
  /** Forgets spans below `offset` once it has been committed. */
  release(offset: bigint): void;
  /** Spans not yet released (for tests and metrics). */
  readonly size: number;
}

/** A tracker for one partition whose records start at any offset. */
export function createPartitionTracker(): PartitionTracker {
  // Spans in order of their first offset; `head` skips released ones without shifting.
  let spans: OffsetSpan[] = [];
  let head = 0;
  let lastSeen = -1n;

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
      if (head === spans.length) return lastSeen + 1n;
      let best = (spans[head] as OffsetSpan).first;
      let maxLast = -1n;
      for (let i = head; i < spans.length; i++) {
        const span = spans[i] as OffsetSpan;
        // A cut at this span's first offset is valid when no earlier span reaches it.
        if (i > head && maxLast < span.first) best = span.first;
        if (!span.done) return best;
        if (span.last > maxLast) maxLast = span.last;
      }
      return lastSeen + 1n;
    },
    release(offset) {
      while (head < spans.length) {
        const span = spans[head] as OffsetSpan;
        if (span.first >= offset) break;
        head++;
      }
      if (head > 1024 && head * 2 > spans.length) {
        spans = spans.slice(head);
        head = 0;
      }
    },
  };
}
