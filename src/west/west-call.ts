/**
 * The state of one call as west's units share it: a call running upstream, a call that
 * ended (kept so its late records, re-deliveries and duplicates are recognised), where
 * their records are in the request partitions, and the call's cancel switch.
 */
import type { Code } from "@connectrpc/connect";
import type { KafkaGrpcRoute } from "../config/types.ts";
import type { ConsumedRecord, TopicPartition } from "../kafka/group-consumer.ts";
import type { ContractRecord, ParsedRequest } from "../kafka/record-contract.ts";
import type { UpstreamCallStats } from "../ops/gateway-metrics.ts";
import type { CallSpan } from "../ops/tracing.ts";
import type { OffsetSpan, PartitionTracker } from "./commit-tracker.ts";
import type { CancelSignal } from "./upstream-client.ts";

/** One call's records on one partition, for the commit point. */
export interface SpanRef {
  tracker: PartitionTracker;
  span: OffsetSpan;
}

/** Where a call's record was, to tell a re-delivery from a new record. */
export interface Position {
  topic: string;
  partition: number;
  offset: bigint;
}

export interface RunningCall {
  id: string;
  replyTo: string;
  route: KafkaGrpcRoute;
  parsed: ParsedRequest;
  /** The call's latest record. */
  position: Position;
  /** The call's first record (its STARTED entry names it; the lease must cover it). */
  firstOffset: bigint;
  spans: SpanRef[];
  /** The request carried the idempotency metadata. */
  keyed: boolean;
  /**
   * The callers' attempts (north's `zilla:attempt`) this call answers: the one that started
   * it and duplicates that joined; a tagged cancel removes its own while others are left,
   * and cancels the call when it is the last (which stays, to tag the CANCELLED end).
   * Undefined for untagged calls (any cancel applies).
   */
  attempts: Set<string> | undefined;
  /** The open duplicate's attempt, if it was tagged. */
  duplicateAttempt: string | undefined;
  /** This start's number: 1, or one more than the starts the changelog knows of. */
  attempt: number;
  /**
   * The changelog knows this attempt may reach the upstream (its STARTED entry, or its
   * partition's lease for a first attempt, was acknowledged).
   */
  startedWritten: boolean;
  /** Request messages in order; kept for a retry until the upstream answered. */
  messages: (Uint8Array | undefined)[];
  /** Bytes of the request messages so far. */
  requestBytes: number;
  answered: boolean;
  requestEnded: boolean;
  /**
   * The method takes one request message (unary, server streaming): it is sent with the
   * request's end, so the upstream gets one DATA frame that ends the stream.
   */
  singleRequest: boolean;
  /**
   * The method answers with one message (unary, client streaming): the message is held and
   * written with the status, in one batch, so north need not wait for a second one.
   */
  singleReply: boolean;
  /** A single reply's message, until the status comes. */
  heldReply: ContractRecord | undefined;
  waiters: Set<() => void>;
  abort: CallCancel;
  /** Set when the call must end with this status whatever the upstream says. */
  failure?: { code: Code; message: string };
  /** Closing, crashing or revoked: end without a reply, leave the records uncommitted. */
  abandoned: boolean;
  /** The reply so far, kept for replays; undefined once larger than a replay may be. */
  reply: ContractRecord[] | undefined;
  replyCount: number;
  replyBytes: number;
  /** A reply record's batch failed: the reply may have a gap. */
  sendFailed: boolean;
  /** Why the first of them failed. */
  sendError?: unknown;
  /** A duplicate request's records arrived after this call's request end. */
  duplicateOpen: boolean;
  duplicateNeedsReplay: boolean;
  /** Duplicates whose waiters may have missed part of the reply: answer them again. */
  replays: number;
  done: Promise<void>;
  /** performance.now() at the upstream call's start. */
  startedAt: number;
  stats: UpstreamCallStats | undefined;
  span: CallSpan | undefined;
}

/**
 * What an ended call left: `replayable`, the upstream's answer (its reply kept for
 * duplicates when keyed and small enough); `unsettled`, no answer from the upstream (west
 * answered itself, or the call was cancelled, timed out or reset after `attempt` starts);
 * `interrupted`, restored from a STARTED entry with nothing after it (west stopped while
 * the call may have been inside the upstream).
 */
export type EndedKind = "replayable" | "unsettled" | "interrupted";

export interface EndedCall {
  id: string;
  kind: EndedKind;
  replyTo: string;
  keyed: boolean;
  /** Starts the upstream may have seen (0: west answered without calling it). */
  attempt: number;
  /** The reply to write again; undefined when not kept. */
  reply: ContractRecord[] | undefined;
  /** The reply was larger than a replay may be: duplicates get ALREADY_EXISTS. */
  tooLarge: boolean;
  replyBytes: number;
  /**
   * This process saw the reply acknowledged. A restored call's reply may be missing (west
   * stopped between its entry and its reply): a re-delivery writes it again, once.
   */
  replyWritten: boolean;
  position: Position;
  finishedAt: number;
  requestEnded: boolean;
  /** The call's own spans, still open while its request has not ended. */
  tail: SpanRef[];
  duplicateOpen: boolean;
  duplicate: SpanRef[];
  /** The answer is still being written: spans complete only after it. */
  settling: Promise<boolean> | undefined;
}

/**
 * A call's cancel switch: what `callUpstream` needs of an AbortSignal, as a plain object
 * (an AbortController and its signal per call cost more than the rest of the call's state).
 */
export class CallCancel implements CancelSignal {
  aborted = false;
  private listeners: (() => void)[] | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.aborted) return;
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.listeners;
    const at = listeners ? listeners.indexOf(listener) : -1;
    if (at >= 0) listeners?.splice(at, 1);
  }
}

/** "topic/partition", the key of a partition's state. */
export function tpKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}

export function positionOf(record: ConsumedRecord): Position {
  return { topic: record.topic, partition: record.partition, offset: record.offset };
}

/** The record is at or before `last` on the same partition: read again, not new. */
export function isRedelivery(last: Position, record: ConsumedRecord): boolean {
  return (
    last.topic === record.topic &&
    last.partition === record.partition &&
    record.offset <= last.offset
  );
}

/** Approximate memory of a consumed record, for the held-records bound. */
export function consumedBytes(record: ConsumedRecord): number {
  let n = 128 + (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) n += 32 + name.length + value.length;
  return n;
}

/** Bytes of a reply record's value and headers. */
export function recordBytes(record: ContractRecord): number {
  let n = (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) n += name.length + value.length;
  return n;
}
