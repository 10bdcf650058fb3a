/**
 * Calls that ended, by correlation id, in memory (docs/idempotency.md, "In memory"): kept so
 * that a call's late records (its request's end after the upstream answered, its caller's
 * cancel), re-deliveries and duplicates with the same idempotency key are recognised.
 *
 * What stays how long: a keyed call (its request carried the idempotency metadata) for the
 * window; an un-keyed call only until its request's offsets are committed (it can come back
 * only as a re-delivery, and re-deliveries come from the commit point on); either at least
 * until its request has ended or `tailGraceMs` passed. Memory is bounded (entries and
 * bytes, oldest out first); a call evicted early counts in `evictedEarly`. The bounds do not
 * apply to what a restore brings back for requests that will be delivered again: evicted, those
 * would run again (a long call or interleaved streams can hold the commit point behind more
 * finished calls than the bounds keep).
 */
import type { TopicPartition } from "../kafka/group-consumer.ts";
import { createReplyStore } from "./reply-store.ts";
import { type EndedCall, type SpanRef, tpKey } from "./west-call.ts";

export interface EndedCalls {
  get(id: string): EndedCall | undefined;
  /**
   * Keeps an ended call (replacing any with its id); `expiresAt` for a restored one. A
   * `pinned` call (restored, its request not committed: it will be delivered again) is kept
   * whatever the bounds and its age, until `releaseCommitted` passes its request.
   */
  put(call: EndedCall, expiresAt?: number, pinned?: boolean): void;
  delete(id: string): void;
  /**
   * Un-keyed calls of `tp` whose records are all below `offset` (committed) go; pinned keyed
   * ones below it are kept from now on like any other.
   */
  releaseCommitted(tp: TopicPartition, offset: bigint): void;
  /** Every call of these partitions goes (revoked: another owner's changelog decides). */
  dropPartitions(keys: ReadonlySet<string>): void;
  /** The lease a restore read for `tp`: first attempts below `end` may have started. */
  setLease(tp: TopicPartition, end: bigint): void;
  /**
   * A new call's first record is below its partition's restored lease: an earlier owner may
   * have started it (docs/idempotency.md, "The lease").
   */
  underLease(record: TopicPartition & { offset: bigint }): boolean;
  /** The call's request ended: its tail's spans complete (once its answer is written). */
  endTail(call: EndedCall): void;
  /** Tails that waited `tailGraceMs` end; expired calls go. */
  sweep(): void;
  readonly size: number;
  readonly bytes: number;
  /** Keyed calls evicted by the bounds before their window ended, so far. */
  readonly evictedEarly: number;
}

export interface EndedCallsOptions {
  windowMs: number;
  tailGraceMs: number;
  maxEntries: number;
  /** Bound of kept replies plus `entryBytes` per call. */
  maxBytes: number;
  /** Marks spans done (they then count for the commit point). */
  complete(spans: readonly SpanRef[]): void;
  now?: () => number;
}

/** Memory one call costs besides its kept reply (an estimate, for the byte bound). */
export const entryBytes = 256;

/** The ended calls of one west binding. */
export function createEndedCalls(opts: EndedCallsOptions): EndedCalls {
  const now = opts.now ?? Date.now;
  const byPartition = new Map<string, Set<EndedCall>>();
  // Un-keyed calls per partition in the order they ended (about offset order).
  const unkeyed = new Map<string, { calls: EndedCall[]; head: number }>();
  const openTails = new Set<EndedCall>();
  let evictedEarly = 0;
  const leases = new Map<string, bigint>();
  // Restored calls whose requests come again, outside the bounded store until committed past.
  const pinned = new Map<
    string,
    { call: EndedCall; bytes: number; expiresAt: number | undefined }
  >();
  let pinnedBytes = 0;
  // By partition, ordered by request offset when released (restores add them in bulk).
  const pinnedOf = new Map<string, { calls: EndedCall[]; sorted: boolean }>();

  const unindex = (call: EndedCall) => {
    byPartition.get(tpKey(call.position))?.delete(call);
    openTails.delete(call);
  };

  const store = createReplyStore<EndedCall>({
    // Kept at least a while even without a window, so a call that finished before its
    // request's end still recognises its own late records.
    retentionMs: Math.max(opts.windowMs, opts.tailGraceMs),
    maxEntries: opts.maxEntries,
    maxBytes: opts.maxBytes,
    now,
    onEvict: (_id, value) => {
      const call = value as EndedCall;
      unindex(call);
      if (call.keyed && now() < call.finishedAt + opts.windowMs) evictedEarly++;
      // Their records were read: they must not hold the commit point for ever.
      opts.complete(call.tail);
      opts.complete(call.duplicate);
    },
  });

  const unpin = (call: EndedCall): { bytes: number; expiresAt: number | undefined } | undefined => {
    const slot = pinned.get(call.id);
    if (slot === undefined || slot.call !== call) return undefined;
    pinned.delete(call.id);
    pinnedBytes -= slot.bytes;
    return slot;
  };

  /** Takes `call` out of wherever it is kept (pinned, or the store), leaving the indexes. */
  const forget = (call: EndedCall) => {
    if (unpin(call) === undefined && store.get(call.id) === call) store.delete(call.id);
  };

  const remove = (call: EndedCall) => {
    unindex(call);
    forget(call);
  };

  const get = (id: string) => pinned.get(id)?.call ?? store.get(id);

  return {
    get,
    put(call, expiresAt, pin = false) {
      const previous = get(call.id);
      if (previous) {
        unindex(previous);
        if (unpin(previous) === undefined && pin) store.delete(call.id);
      }
      const bytes = entryBytes + (call.reply ? call.replyBytes : 0);
      const key = tpKey(call.position);
      if (pin) {
        pinned.set(call.id, { call, bytes, expiresAt });
        pinnedBytes += bytes;
        const list = pinnedOf.get(key);
        if (list) {
          list.calls.push(call);
          list.sorted = false;
        } else pinnedOf.set(key, { calls: [call], sorted: true });
      } else store.put(call.id, call, bytes, expiresAt);
      let set = byPartition.get(key);
      if (!set) {
        set = new Set();
        byPartition.set(key, set);
      }
      set.add(call);
      if (!call.requestEnded) openTails.add(call);
      if (!call.keyed && !pin) {
        let queue = unkeyed.get(key);
        if (!queue) {
          queue = { calls: [], head: 0 };
          unkeyed.set(key, queue);
        }
        queue.calls.push(call);
      }
    },
    delete(id) {
      const call = get(id);
      if (call) remove(call);
    },
    releaseCommitted(tp, offset) {
      const list = pinnedOf.get(tpKey(tp));
      if (list) {
        if (!list.sorted) {
          list.calls.sort((a, b) => (a.position.offset < b.position.offset ? -1 : 1));
          list.sorted = true;
        }
        let passed = 0;
        for (const call of list.calls) {
          if (call.position.offset >= offset) break;
          passed++;
          const slot = unpin(call);
          if (slot === undefined) continue;
          // Committed past: an un-keyed call cannot come back; a keyed one is kept as usual.
          if (call.keyed) store.put(call.id, call, slot.bytes, slot.expiresAt);
          else unindex(call);
        }
        if (passed === list.calls.length) pinnedOf.delete(tpKey(tp));
        else if (passed > 0) list.calls = list.calls.slice(passed);
      }
      const queue = unkeyed.get(tpKey(tp));
      if (!queue) return;
      while (queue.head < queue.calls.length) {
        const call = queue.calls[queue.head] as EndedCall;
        // Calls end about in offset order; one ending later is released by a later commit.
        if (call.position.offset >= offset && store.get(call.id) === call) break;
        if (call.position.offset < offset) remove(call);
        queue.head++;
      }
      if (queue.head > 1024 && queue.head * 2 > queue.calls.length) {
        queue.calls = queue.calls.slice(queue.head);
        queue.head = 0;
      }
    },
    dropPartitions(keys) {
      for (const key of keys) {
        for (const call of byPartition.get(key) ?? []) {
          openTails.delete(call);
          forget(call);
        }
        byPartition.delete(key);
        unkeyed.delete(key);
        pinnedOf.delete(key);
        leases.delete(key);
      }
    },
    setLease(tp, end) {
      leases.set(tpKey(tp), end);
    },
    underLease(record) {
      if (leases.size === 0) return false;
      const end = leases.get(tpKey(record));
      return end !== undefined && record.offset < end;
    },
    endTail(call) {
      call.requestEnded = true;
      openTails.delete(call);
      completeAfterSettled(call, call.tail, opts.complete);
    },
    sweep() {
      const t = now();
      for (const call of openTails) {
        if (t - call.finishedAt < opts.tailGraceMs) continue;
        call.requestEnded = true;
        openTails.delete(call);
        completeAfterSettled(call, call.tail, opts.complete);
      }
      store.sweep();
    },
    get size() {
      return store.size + pinned.size;
    },
    get bytes() {
      return store.bytes + pinnedBytes;
    },
    get evictedEarly() {
      return evictedEarly;
    },
  };
}

/** Completes `spans` once the call's answer is written (at once if it is). */
export function completeAfterSettled(
  call: EndedCall,
  spans: readonly SpanRef[],
  complete: (spans: readonly SpanRef[]) => void,
): void {
  if (spans.length === 0) return;
  if (!call.settling) complete(spans);
  else
    void call.settling.then((written) => {
      if (written) complete(spans);
    });
}
