/**
 * Calls that ended, by correlation id, in memory (docs/idempotency.md, "In memory"): kept so
 * that a call's late records (its request's end after the upstream answered, its caller's
 * cancel), re-deliveries and duplicates with the same idempotency key are recognised.
 *
 * What stays how long: a keyed call (its request carried the idempotency metadata) for the
 * window; an un-keyed call only until its request's offsets are committed (it can come back
 * only as a re-delivery, and re-deliveries come from the commit point on); either at least
 * until its request has ended or `tailGraceMs` passed. Memory is bounded (entries and
 * bytes, oldest out first); a call evicted early counts in `evictedEarly`.
 */
import type { TopicPartition } from "../kafka/group-consumer.ts";
import { createReplyStore } from "./reply-store.ts";
import { type EndedCall, type SpanRef, tpKey } from "./west-call.ts";

export interface EndedCalls {
  get(id: string): EndedCall | undefined;
  /** Keeps an ended call (replacing any with its id); `expiresAt` for a restored one. */
  put(call: EndedCall, expiresAt?: number): void;
  delete(id: string): void;
  /** Un-keyed calls of `tp` whose records are all below `offset` (committed) go. */
  releaseCommitted(tp: TopicPartition, offset: bigint): void;
  /** Every call of these partitions goes (revoked: another owner's changelog decides). */
  dropPartitions(keys: ReadonlySet<string>): void;
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

  const remove = (call: EndedCall) => {
    unindex(call);
    if (store.get(call.id) === call) store.delete(call.id);
  };

  return {
    get: (id) => store.get(id),
    put(call, expiresAt) {
      const previous = store.get(call.id);
      if (previous) unindex(previous);
      const bytes = entryBytes + (call.reply ? call.replyBytes : 0);
      store.put(call.id, call, bytes, expiresAt);
      const key = tpKey(call.position);
      let set = byPartition.get(key);
      if (!set) {
        set = new Set();
        byPartition.set(key, set);
      }
      set.add(call);
      if (!call.requestEnded) openTails.add(call);
      if (!call.keyed) {
        let queue = unkeyed.get(key);
        if (!queue) {
          queue = { calls: [], head: 0 };
          unkeyed.set(key, queue);
        }
        queue.calls.push(call);
      }
    },
    delete(id) {
      const call = store.get(id);
      if (call) remove(call);
    },
    releaseCommitted(tp, offset) {
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
          if (store.get(call.id) === call) store.delete(call.id);
        }
        byPartition.delete(key);
        unkeyed.delete(key);
      }
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
      return store.size;
    },
    get bytes() {
      return store.bytes;
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
