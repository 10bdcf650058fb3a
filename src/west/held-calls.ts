/**
 * The records of new calls read while every call slot is taken (docs/contract.md: West: calls are bounded,
 * consumption pauses at the bound). Records of calls already running are always read (a
 * client stream's next messages and its end sit further on in the same partition, behind
 * other calls' records), so records of new calls past the bound are held here, in arrival
 * order, until a call ends. Only when the held records reach their bounds is a record
 * refused, which pauses its partition until there is room again.
 */
import type { ConsumedRecord } from "../kafka/group-consumer.ts";
import type { ParsedRequest } from "../kafka/record-contract.ts";
import type { PartitionTracker } from "./commit-tracker.ts";
import { consumedBytes, type SpanRef, tpKey } from "./west-call.ts";

/** A new call's records read while every slot was taken. */
export interface HeldCall {
  /** The partition's key (tpKey). */
  key: string;
  tracker: PartitionTracker;
  records: { record: ConsumedRecord; parsed: ParsedRequest }[];
  /** The records' offsets, open (uncommittable) until the call is done. */
  spans: SpanRef[];
  bytes: number;
}

export interface HeldCalls {
  /** Calls held. */
  readonly size: number;
  has(id: string): boolean;
  /**
   * Holds a record of call `id` (its offset joins the call's spans through `attach`);
   * false when the bounds leave no room.
   */
  hold(
    id: string,
    record: ConsumedRecord,
    tracker: PartitionTracker,
    parsed: ParsedRequest,
    attach: (spans: SpanRef[], tracker: PartitionTracker, offset: bigint) => void,
  ): boolean;
  /** Takes the call held longest. */
  take(): [id: string, call: HeldCall] | undefined;
  /** Forgets the calls `stale` says no longer belong here (a revoked partition's). */
  drop(stale: (call: HeldCall) => boolean): void;
  /** Below both bounds: refused partitions may be read again. */
  hasRoom(): boolean;
}

/** Held calls bounded by record count and approximate bytes. */
export function createHeldCalls(bounds: { maxRecords: number; maxBytes: number }): HeldCalls {
  const held = new Map<string, HeldCall>();
  let records = 0;
  let bytes = 0;

  const forget = (id: string, call: HeldCall) => {
    held.delete(id);
    records -= call.records.length;
    bytes -= call.bytes;
  };

  return {
    get size() {
      return held.size;
    },
    has: (id) => held.has(id),
    hold(id, record, tracker, parsed, attach) {
      const size = consumedBytes(record);
      // One record is always taken, so a record larger than the bound still gets its turn.
      if (records > 0 && (records >= bounds.maxRecords || bytes + size > bounds.maxBytes)) {
        return false;
      }
      let call = held.get(id);
      if (!call) {
        call = { key: tpKey(record), tracker, records: [], spans: [], bytes: 0 };
        held.set(id, call);
      }
      call.records.push({ record, parsed });
      // Seen and uncommittable from now on, though the call starts later.
      attach(call.spans, tracker, record.offset);
      call.bytes += size;
      records++;
      bytes += size;
      return true;
    },
    take() {
      const first = held.entries().next();
      if (first.done) return undefined;
      const [id, call] = first.value;
      forget(id, call);
      return [id, call];
    },
    drop(stale) {
      for (const [id, call] of held) if (stale(call)) forget(id, call);
    },
    hasRoom: () => records < bounds.maxRecords && bytes < bounds.maxBytes,
  };
}
