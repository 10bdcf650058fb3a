/**
 * Finished calls by correlation id, kept so a duplicate request inside the idempotency
 * window gets the stored reply again instead of a second upstream call (docs/contract.md: difference 4).
 * Memory is bounded three ways: entries leave after their retention time, and the oldest
 * leave first when there are more than `maxEntries` or their replies exceed `maxBytes`.
 */

export interface ReplyStoreOptions {
  /** How long an entry is kept after it was stored. */
  retentionMs: number;
  maxEntries: number;
  maxBytes: number;
  /** Called for every entry that leaves other than by `delete`. */
  onEvict?: (id: string, value: unknown) => void;
  now?: () => number;
}

export interface ReplyStore<T> {
  /** The entry for `id` if it is still retained. */
  get(id: string): T | undefined;
  /**
   * Stores (or replaces) the entry for `id`, `bytes` being its reply's size; it expires
   * `retentionMs` from now, or at `expiresAt` (an entry restored from elsewhere). Entries
   * put with an earlier `expiresAt` than others still leave by `get` and the bounds on time,
   * by `sweep` once those before them have gone.
   */
  put(id: string, value: T, bytes: number, expiresAt?: number): void;
  delete(id: string): void;
  /** Drops entries whose retention ended. */
  sweep(): void;
  readonly size: number;
  readonly bytes: number;
}

interface Slot<T> {
  id: string;
  value: T;
  bytes: number;
  expiresAt: number;
  /** Left the store (deleted or replaced): its place in the queue is skipped. */
  gone: boolean;
}

/** A store whose entries expire `retentionMs` after `put`. */
export function createReplyStore<T>(opts: ReplyStoreOptions): ReplyStore<T> {
  const now = opts.now ?? Date.now;
  const slots = new Map<string, Slot<T>>();
  // Every entry has the same retention, so storing order is expiry order: expiry and
  // eviction take from the head of this queue. (Walking a Map from its start instead costs
  // a skip over every entry deleted since the engine last rehashed it, on each sweep.)
  let queue: Slot<T>[] = [];
  let head = 0;
  let bytes = 0;

  const remove = (slot: Slot<T>, evicted: boolean) => {
    slots.delete(slot.id);
    slot.gone = true;
    bytes -= slot.bytes;
    if (evicted) opts.onEvict?.(slot.id, slot.value);
  };

  const sweep = () => {
    const t = now();
    while (head < queue.length) {
      const slot = queue[head] as Slot<T>;
      if (!slot.gone) {
        if (slot.expiresAt > t && slots.size <= opts.maxEntries && bytes <= opts.maxBytes) break;
        remove(slot, true);
      }
      head++;
    }
    // Drop the consumed part of the queue once it is most of it.
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
  };

  return {
    get(id) {
      const slot = slots.get(id);
      if (slot === undefined) return undefined;
      if (slot.expiresAt <= now()) {
        remove(slot, true);
        return undefined;
      }
      return slot.value;
    },
    put(id, value, size, expiresAt) {
      const existing = slots.get(id);
      if (existing) remove(existing, false);
      const slot: Slot<T> = {
        id,
        value,
        bytes: size,
        expiresAt: expiresAt ?? now() + opts.retentionMs,
        gone: false,
      };
      slots.set(id, slot);
      queue.push(slot);
      bytes += size;
      // Expiry is the periodic sweep's (and `get` checks it); a put only enforces the bounds.
      if (slots.size > opts.maxEntries || bytes > opts.maxBytes) sweep();
    },
    delete(id) {
      const existing = slots.get(id);
      if (existing) remove(existing, false);
    },
    sweep,
    get size() {
      return slots.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
