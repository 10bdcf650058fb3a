/**
 * Where each consumed request record goes (docs/contract.md: West, difference 4; docs/idempotency.md): to its
 * running call; to what an ended call left (its late records, a re-delivery, a duplicate
 * answered from the kept reply, or a new attempt); to a new call, which starts if a slot is
 * free and is held otherwise; or to an answer west gives itself when the record cannot
 * become an upstream call (no service or method, names that are not proto names, too large,
 * deadline passed). Records without a correlation id or a route are skipped.
 */
import { Code } from "@connectrpc/connect";
import type { KafkaGrpcOptions, KafkaGrpcRoute } from "../config/types.ts";
import type { ConsumedRecord } from "../kafka/group-consumer.ts";
import { type ParsedRequest, parseRequestHeaders } from "../kafka/record-contract.ts";
import type { WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger } from "../ops/logger.ts";
import { type CallRunner, tooLargeMessage } from "./call-runner.ts";
import type { PartitionTracker } from "./commit-tracker.ts";
import { completeAfterSettled, type EndedCalls } from "./ended-calls.ts";
import type { HeldCalls } from "./held-calls.ts";
import type { OffsetCommits } from "./offset-commits.ts";
import type { ReplyWriter } from "./reply-writer.ts";
import { checkMethodNames, checkRequestBytes, type Refusal } from "./request-checks.ts";
import {
  type EndedCall,
  isRedelivery,
  positionOf,
  type RunningCall,
  type SpanRef,
} from "./west-call.ts";
import { matchWestRoute } from "./west-routes.ts";

export interface RecordRouter {
  /** A consumed record; false when it must be read again later (no room to hold it). */
  handle(record: ConsumedRecord): boolean;
  /** Starts held calls while slots are free, then lets refused partitions be read again. */
  startHeld(): void;
  /** Routes new calls by `routes` from now on. */
  setRoutes(routes: KafkaGrpcRoute[]): void;
}

export interface RecordRouterOptions {
  options: KafkaGrpcOptions;
  routes: KafkaGrpcRoute[];
  runner: CallRunner;
  ended: EndedCalls;
  held: HeldCalls;
  commits: OffsetCommits;
  replies: ReplyWriter;
  logger: Logger;
  metrics?: WestMetrics | undefined;
  closing(): boolean;
  /** Partitions paused by a refused record may be read again. */
  resumeRefused(): void;
}

const noServiceMessage = "request record has no service or method header";

// What north makes of a call without an idempotency key: a random v4 UUID, then an md5.
const randomIdForm =
  /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-[0-9a-f]{32}$/;

/**
 * Whether a duplicate of this call may come (docs/idempotency.md, "Keyed calls"): its request
 * carried the idempotency metadata, or its correlation id is not one north generated at
 * random (another producer chose it and may write it again). Other calls can come back only
 * as re-deliveries.
 */
export function isKeyedCall(parsed: ParsedRequest, metadataName: string): boolean {
  if (parsed.metadata.some(([name]) => name === metadataName)) return true;
  return !randomIdForm.test(parsed.correlationId ?? "");
}

/** A tagged record of an attempt the call does not answer, while the call is failing. */
function isOtherAttemptOfFailingCall(call: RunningCall, parsed: ParsedRequest): boolean {
  if (call.failure === undefined || parsed.attemptId === undefined) return false;
  return call.attempts !== undefined && !call.attempts.has(parsed.attemptId);
}

/** What to do with a record whose id has an ended call: handled, or start attempt n + 1. */
type EndedDecision = "handled" | { attemptsBefore: number };

/** The router of one west binding. */
export function createRecordRouter(opts: RecordRouterOptions): RecordRouter {
  const { options, runner, ended, held, commits, replies, logger, metrics } = opts;
  const names = options.correlation.headers;
  let routes = opts.routes;

  const skip = (tracker: PartitionTracker, record: ConsumedRecord, reason: string) => {
    commits.skip(tracker, record.offset);
    logger.debug("request record skipped", {
      reason,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
    });
  };

  /** Skips a record; one already held only has its spans marked done. */
  const skipHeld = (tracker: PartitionTracker, record: ConsumedRecord, spans?: SpanRef[]) => {
    if (spans) commits.complete(spans);
    else skip(tracker, record, "no route");
  };

  /** A record with nothing left to do, once the ended call's answer is written. */
  const settle = (
    call: EndedCall,
    tracker: PartitionTracker,
    record: ConsumedRecord,
    spans?: SpanRef[],
  ) => {
    const own = spans ?? [];
    commits.attach(own, tracker, record.offset);
    completeAfterSettled(call, own, commits.complete);
  };

  const onEndedRecord = (
    call: EndedCall,
    tracker: PartitionTracker,
    record: ConsumedRecord,
    spans?: SpanRef[],
  ): EndedDecision => {
    // West stopped while this call may have been inside the upstream: run it once more.
    if (call.kind === "interrupted") return { attemptsBefore: call.attempt };
    if (isRedelivery(call.position, record)) {
      // A restored reply may be missing (west stopped between its entry and its reply).
      if (call.kind === "replayable" && !call.replyWritten && call.reply) {
        call.replyWritten = true;
        const own = spans ?? [];
        commits.attach(own, tracker, record.offset);
        logger.debug("re-delivered request answered from the changelog", {
          correlationId: call.id,
        });
        void replies.replay(call.replyTo, call.reply, call.id).then((ok) => {
          if (ok) commits.complete(own);
        });
      } else settle(call, tracker, record, spans);
      return "handled";
    }
    if (!call.requestEnded) {
      // The rest of the call's own request: the call ended before its request did.
      call.position = positionOf(record);
      commits.attach(call.tail, tracker, record.offset);
      if (record.value === null) ended.endTail(call);
      return "handled";
    }
    if (call.kind === "unsettled") {
      // No answer to replay: a new request with this id runs; a lone end record after the
      // request's end is its caller's cancel, with nothing left to cancel.
      if (record.value !== null) return { attemptsBefore: call.attempt };
      call.position = positionOf(record);
      settle(call, tracker, record, spans);
      return "handled";
    }
    const expired = Date.now() >= call.finishedAt + options.idempotencyWindowMs;
    if (!call.duplicateOpen && (!call.keyed || expired)) return { attemptsBefore: 0 };
    call.position = positionOf(record);
    commits.attach(call.duplicate, tracker, record.offset);
    if (record.value !== null) {
      call.duplicateOpen = true;
      return "handled";
    }
    call.duplicateOpen = false;
    const duplicate = call.duplicate;
    call.duplicate = [];
    logger.debug("duplicate request answered from the idempotency store", {
      correlationId: call.id,
    });
    const written = call.reply
      ? replies.replay(call.replyTo, call.reply, call.id)
      : replies.answer(
          call.replyTo,
          call.id,
          Code.AlreadyExists,
          tooLargeMessage(call.replyBytes, options.replayMaxBytes),
        );
    void written.then((ok) => {
      if (ok) commits.complete(duplicate);
    });
    return "handled";
  };

  /** Why a new call's first record cannot become an upstream call, if it cannot. */
  const refusalOf = (record: ConsumedRecord, parsed: ParsedRequest): Refusal | undefined => {
    const bytes = record.value?.byteLength ?? 0;
    const tooLarge = checkRequestBytes(bytes, options.maxMessageBytes, "request message");
    if (tooLarge) return tooLarge;
    if (parsed.deadlineMs !== undefined && parsed.deadlineMs <= Date.now()) {
      return { code: Code.DeadlineExceeded, message: "deadline expired before the upstream call" };
    }
    return undefined;
  };

  /**
   * Hands a record to its call: a running one, an ended one, or a new one, which starts if
   * a slot is free and is held otherwise. `spans` are a held call's, whose records the
   * tracker has seen already. False when the record could not be held.
   */
  const dispatch = (
    record: ConsumedRecord,
    tracker: PartitionTracker,
    parsed: ParsedRequest,
    spans?: SpanRef[],
  ): boolean => {
    const id = parsed.correlationId as string;
    const running = runner.calls.get(id);
    // An abandoned call (its partition was revoked) only waits to end: it takes no records.
    if (running && !running.abandoned) {
      // Another caller's attempt must not join a call that is ending without an answer
      // (cancelled, failed): it waits for that end, then runs as the next attempt.
      if (spans === undefined && isOtherAttemptOfFailingCall(running, parsed)) {
        return held.hold(id, record, tracker, parsed, commits.attach);
      }
      runner.onRecord(running, tracker, record, parsed.attemptId);
      return true;
    }
    let attemptsBefore = 0;
    const endedCall = ended.get(id);
    if (endedCall) {
      const decision = onEndedRecord(endedCall, tracker, record, spans);
      if (decision === "handled") return true;
      attemptsBefore = decision.attemptsBefore;
    }
    const keyed = isKeyedCall(parsed, options.idempotency.metadata);
    const init = { record, tracker, parsed, spans, keyed };
    const routeInput = {
      topic: record.topic,
      key: record.key,
      headers: parsed.headers,
      replyTo: parsed.replyTo,
      service: parsed.service,
      method: parsed.method,
    };
    const { service, method } = parsed;
    const badNames =
      service === undefined || method === undefined
        ? { code: Code.Internal, message: noServiceMessage }
        : checkMethodNames(service, method);
    if (badNames) {
      // A route (ignoring its method condition) says west may answer on its reply topic.
      const route = matchWestRoute(routes, routeInput, true);
      if (!route) skipHeld(tracker, record, spans);
      else runner.answer(init, badNames, attemptsBefore);
      return true;
    }
    const route = matchWestRoute(routes, routeInput);
    if (!route) {
      skipHeld(tracker, record, spans);
      return true;
    }
    // A first attempt an earlier owner may have started under its lease runs as the second.
    if (attemptsBefore === 0 && ended.underLease(record)) attemptsBefore = 1;
    const refusal = refusalOf(record, parsed);
    if (refusal) {
      runner.answer(init, refusal, attemptsBefore);
      return true;
    }
    if (runner.active >= options.maxConcurrentCalls) {
      return held.hold(id, record, tracker, parsed, commits.attach);
    }
    runner.start(init, route, attemptsBefore);
    return true;
  };

  return {
    handle(record) {
      if (opts.closing()) return true;
      const tracker = commits.trackerFor(record);
      if (tracker.seen(record.offset)) return true;
      const parsed = parseRequestHeaders(record.headers, names);
      const id = parsed.correlationId;
      // An empty id is none: it is the changelog's lease key, which no call may share.
      if (!id) {
        skip(tracker, record, "no correlation id");
      } else if (held.has(id) || (held.size > 0 && !runner.calls.has(id) && !ended.get(id))) {
        // Behind the calls already waiting for a slot: their order is kept.
        if (!held.hold(id, record, tracker, parsed, commits.attach)) return false;
      } else if (!dispatch(record, tracker, parsed)) {
        return false;
      }
      metrics?.consumed(Math.max(0, Date.now() - record.timestampMs) / 1000);
      return true;
    },
    startHeld() {
      while (held.size > 0 && runner.active < options.maxConcurrentCalls && !opts.closing()) {
        const [, call] = held.take() as NonNullable<ReturnType<HeldCalls["take"]>>;
        // A revoked partition's records are the new owner's now.
        if (!commits.isCurrent(call.key, call.tracker)) continue;
        for (const { record, parsed } of call.records) {
          dispatch(record, call.tracker, parsed, call.spans);
        }
      }
      if (held.hasRoom()) opts.resumeRefused();
    },
    setRoutes(next) {
      routes = next;
    },
  };
}
