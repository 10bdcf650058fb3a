/**
 * The most recent records of one partition, shared by every fetch call at the live edge.
 * Records get consecutive sequence numbers as they are appended; a reader keeps the
 * sequence number of the next record it wants, so reading is O(1) and needs no per-reader
 * state in the ring. Bounded by record count and by bytes: the oldest records are evicted
 * whether or not a reader still wants them, which is how a slow reader is noticed (its
 * next sequence number falls below `firstSeq`) without holding memory for it.
 */

/** What the ring needs to know about a record. */
export interface RingRecord {
  offset: number;
  /** Bytes the record holds (value, key and headers), for the byte bound. */
  size: number;
}

export class PartitionRing<T extends RingRecord> {
  readonly capacity: number;
  readonly maxBytes: number;
  /** Sequence number of the oldest record held. */
  firstSeq = 0;
  /** Sequence number the next appended record gets. */
  nextSeq = 0;
  /** Every position at or after this offset can be served from here (now or once fetched). */
  startOffset: number;
  /** The position after the last appended record: where the shared reader fetches next. */
  headOffset: number;
  /** Bytes held. */
  bytes = 0;
  private readonly slots: (T | undefined)[];

  constructor(capacity: number, maxBytes: number, startOffset: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.startOffset = startOffset;
    this.headOffset = startOffset;
    this.slots = new Array<T | undefined>(capacity);
  }

  /** Records held. */
  get length(): number {
    return this.nextSeq - this.firstSeq;
  }

  /** Appends a record at or after `headOffset` (earlier ones are re-deliveries: ignored). */
  append(record: T): boolean {
    if (record.offset < this.headOffset) return false;
    if (this.length === this.capacity) this.evictOldest();
    this.slots[this.nextSeq % this.capacity] = record;
    this.nextSeq++;
    this.bytes += record.size;
    this.headOffset = record.offset + 1;
    // Keep the newest record even when it alone exceeds the byte bound, so it can be served.
    while (this.bytes > this.maxBytes && this.length > 1) this.evictOldest();
    return true;
  }

  /** The record with this sequence number, if held (not evicted, already appended). */
  at(seq: number): T | undefined {
    if (seq < this.firstSeq || seq >= this.nextSeq) return undefined;
    return this.slots[seq % this.capacity];
  }

  /**
   * The sequence number of the first record at or after `position` (`nextSeq` when none is
   * held yet), or `undefined` when `position` is before what the ring can serve.
   */
  seqAt(position: number): number | undefined {
    if (position < this.startOffset) return undefined;
    let lo = this.firstSeq;
    let hi = this.nextSeq;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const record = this.slots[mid % this.capacity];
      if (record !== undefined && record.offset < position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Records held at or after sequence number `seq`. */
  countFrom(seq: number): number {
    return this.nextSeq - Math.max(seq, this.firstSeq);
  }

  /** Drops every record (the ring is discarded). */
  clear(): void {
    this.slots.fill(undefined);
    this.firstSeq = this.nextSeq;
    this.bytes = 0;
  }

  private evictOldest(): void {
    const index = this.firstSeq % this.capacity;
    const oldest = this.slots[index];
    this.slots[index] = undefined;
    this.firstSeq++;
    if (oldest !== undefined) {
      this.bytes -= oldest.size;
      this.startOffset = oldest.offset + 1;
    }
  }
}
