/**
 * Finished calls by correlation id, kept so a duplicate request inside the idempotency
 * window gets the stored reply again instead of a second upstream call (SPEC §8.4).
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
  /** Stores (or replaces) the entry for `id`, `bytes` being its reply's size. */
  put(id: string, value: T, bytes: number): void;
  delete(id: string): void;
  /** Drops entries whose retention ended. */
  sweep(): void;
  readonly size: number;
  readonly bytes: number;
}

interface Slot<T> {
  value: T;
  bytes: number;
  expiresAt: number;
}

/** A store whose entries expire `retentionMs` after `put`. */
export function createReplyStore<T>(opts: ReplyStoreOptions): ReplyStore<T> {
  const now = opts.now ?? Date.now;
  // Map iteration order is insertion order, and every entry has the same retention, so
  // the first entry is always the oldest: expiry and eviction only look at the head.
  const slots = new Map<string, Slot<T>>();
  let bytes = 0;

  const remove = (id: string, slot: Slot<T>, evicted: boolean) => {
    slots.delete(id);
    bytes -= slot.bytes;
    if (evicted) opts.onEvict?.(id, slot.value);
  };

  const sweep = () => {
    const t = now();
    for (const [id, slot] of slots) {
      if (slot.expiresAt > t && slots.size <= opts.maxEntries && bytes <= opts.maxBytes) break;
      remove(id, slot, true);
    }
  };

  return {
    get(id) {
      const slot = slots.get(id);
      if (slot === undefined) return undefined;
      if (slot.expiresAt <= now()) {
        remove(id, slot, true);
        return undefined;
      }
      return slot.value;
    },
    put(id, value, size) {
      const existing = slots.get(id);
      if (existing) remove(id, existing, false);
      slots.set(id, { value, bytes: size, expiresAt: now() + opts.retentionMs });
      bytes += size;
      // Expiry is the periodic sweep's (and `get` checks it); a put only enforces the bounds.
      if (slots.size > opts.maxEntries || bytes > opts.maxBytes) sweep();
    },
    delete(id) {
      const existing = slots.get(id);
      if (existing) remove(id, existing, false);
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
