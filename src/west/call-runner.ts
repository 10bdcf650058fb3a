/**
 * West's calls from first record to reply (docs/contract.md: West): a call is started on its first record,
 * fed its further records as request messages, run against the upstream, and finished with
 * its reply's end record; answers west gives itself (no upstream call) go the same way out.
 * What the changelog learns, and when (docs/idempotency.md): the partition's lease (a first
 * attempt) or a STARTED entry (a later one) is acknowledged before the upstream call,
 * FINISHED (the upstream's answer, its reply inline when small enough) or ABORTED (no answer
 * from the upstream) before the reply's end record; a reply too large to keep gets its
 * FINISHED after the end record was acknowledged.
 */
import { Code } from "@connectrpc/connect";
import type { KafkaGrpcOptions, KafkaGrpcRoute } from "../config/types.ts";
import type { ConsumedRecord } from "../kafka/group-consumer.ts";
import type { ContractRecord, ParsedRequest } from "../kafka/record-contract.ts";
import type { WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger, LogLevel } from "../ops/logger.ts";
import { type CallTracer, traceparentOf, withTraceparent } from "../ops/tracing.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import type { CallJournal } from "./call-journal.ts";
import { checkMessageBytes } from "./check-message-bytes.ts";
import type { PartitionTracker } from "./commit-tracker.ts";
import { completeAfterSettled, type EndedCalls } from "./ended-calls.ts";
import type { OffsetCommits } from "./offset-commits.ts";
import type { ReplyWriter } from "./reply-writer.ts";
import { checkRequestBytes, clampDeadlineMs, type Refusal } from "./request-checks.ts";
import { callUpstream, type RequestSource, type UpstreamResult } from "./upstream-client.ts";
import type { UpstreamPool } from "./upstream-pool.ts";
import {
  CallCancel,
  type EndedCall,
  isRedelivery,
  positionOf,
  type RunningCall,
  type SpanRef,
} from "./west-call.ts";

/** gRPC's retry convention: how many times the call was sent before this one. */
export const previousAttemptsHeader = "grpc-previous-rpc-attempts";

/** A record that starts a call, or that west answers itself. */
export interface CallInit {
  record: ConsumedRecord;
  tracker: PartitionTracker;
  parsed: ParsedRequest;
  /** A held call's spans (the tracker has seen its records already). */
  spans?: SpanRef[] | undefined;
  /** The request carried the idempotency metadata. */
  keyed: boolean;
}

export interface CallRunner {
  /** Calls running, by correlation id. */
  readonly calls: ReadonlyMap<string, RunningCall>;
  /** Calls holding a slot (running upstream). */
  readonly active: number;
  /** Starts a call upstream; `attemptsBefore` starts of it the upstream may have seen. */
  start(init: CallInit, route: KafkaGrpcRoute, attemptsBefore: number): void;
  /**
   * Answers without calling the upstream; nothing is kept to replay. `attemptsBefore`:
   * starts of this call the upstream may have seen (the changelog learns it ended).
   */
  answer(init: CallInit, refusal: Refusal, attemptsBefore?: number): void;
  /** A further record of a running call; `attemptId` is the attempt it is tagged with. */
  onRecord(
    call: RunningCall,
    tracker: PartitionTracker,
    record: ConsumedRecord,
    attemptId: string | undefined,
  ): void;
  /** Ends the matching calls without a reply, their records left uncommitted. */
  abandon(which: (call: RunningCall) => boolean): void;
  /** Resolves once every call ended or `ms` passed. */
  waitForCalls(ms: number): Promise<void>;
}

export interface CallRunnerOptions {
  options: KafkaGrpcOptions;
  registry: ServiceRegistry;
  pool: UpstreamPool;
  replies: ReplyWriter;
  journal: CallJournal;
  commits: OffsetCommits;
  ended: EndedCalls;
  logger: Logger;
  callLogLevel: LogLevel;
  metrics?: WestMetrics | undefined;
  tracer?: CallTracer | undefined;
  /** A slot came free. */
  onSlotFree(): void;
}

/** The calls of one west binding. */
export function createCallRunner(opts: CallRunnerOptions): CallRunner {
  const { options, replies, journal, commits, ended, logger, metrics, tracer } = opts;
  const calls = new Map<string, RunningCall>();
  let active = 0;

  /** Each generated service's methods by name (only services in gen/, so it stays bounded). */
  const kinds = new Map<string, Map<string, string>>();
  /** The kind of a generated method (undefined for methods not in gen/: they stream). */
  const methodKind = (parsed: ParsedRequest): string | undefined => {
    const name = parsed.service as string;
    let methods = kinds.get(name);
    if (methods === undefined) {
      const service = opts.registry.services.get(name);
      if (service === undefined) return undefined;
      methods = new Map(service.methods.map((m) => [m.name, m.methodKind]));
      kinds.set(name, methods);
    }
    return methods.get(parsed.method as string);
  };

  const wake = (call: RunningCall) => {
    for (const w of call.waiters) w();
    call.waiters.clear();
  };

  const fail = (call: RunningCall, refusal: Refusal) => {
    call.failure ??= refusal;
    call.abort.abort();
    wake(call);
  };

  const addMessage = (call: RunningCall, value: Uint8Array) => {
    call.requestBytes += value.byteLength;
    const max = options.maxMessageBytes;
    const refusal =
      checkRequestBytes(value.byteLength, max, "request message") ??
      (call.singleRequest ? checkRequestBytes(call.requestBytes, max, "request") : undefined);
    if (refusal) return fail(call, refusal);
    try {
      call.messages.push(checkMessageBytes(value));
    } catch {
      return fail(call, { code: Code.Internal, message: "request message is not valid protobuf" });
    }
    wake(call);
  };

  /** The request so far, chunk by chunk: the end rides with the last messages. */
  function requestSource(call: RunningCall): RequestSource {
    let next = 0;
    let done = false;
    return {
      take() {
        if (done) return undefined;
        const ended = call.requestEnded || call.abort.aborted;
        if (!ended && (next >= call.messages.length || call.singleRequest)) return undefined;
        const messages = call.messages.slice(next) as Uint8Array[];
        // Once the upstream answered there is no retry left to resend for.
        if (call.answered) call.messages.fill(undefined, next);
        next = call.messages.length;
        done = ended;
        return { messages, ended };
      },
      wait: () => new Promise<void>((resolve) => call.waiters.add(resolve)),
    };
  }

  /** The metadata the upstream gets: the request's, its trace, and which attempt this is. */
  const upstreamMetadata = (call: RunningCall): readonly (readonly [string, string])[] => {
    let metadata: [string, string][] = call.parsed.metadata;
    // Only west says which attempt this is.
    if (metadata.some(([name]) => name === previousAttemptsHeader)) {
      metadata = metadata.filter(([name]) => name !== previousAttemptsHeader);
    }
    if (call.attempt > 1)
      metadata = [...metadata, [previousAttemptsHeader, String(call.attempt - 1)]];
    return call.span ? withTraceparent(metadata, call.span.traceparent) : metadata;
  };

  const run = async (call: RunningCall, deadlineMs: number) => {
    if (journal.durable && (await journal.started(call)) === "stopped") return abandonCall(call);
    if (call.abandoned) return abandonCall(call);
    call.startedWritten = true;
    call.stats?.started();
    const parsed = call.parsed;
    const result = await callUpstream({
      transport: opts.pool.transportFor(call.route.with),
      service: parsed.service as string,
      method: parsed.method as string,
      metadata: upstreamMetadata(call),
      deadlineMs,
      signal: call.abort,
      requests: () => requestSource(call),
      onAnswered: () => {
        call.answered = true;
      },
      retry: options.retry,
      onMessage: (bytes, header) => replies.emit(call, bytes, header),
    });
    if (call.abandoned) return abandonCall(call);
    await finish(call, result);
  };

  const finish = async (call: RunningCall, result: UpstreamResult) => {
    const code = call.failure?.code ?? result.code;
    const message = call.failure?.message ?? result.message;
    // Only the upstream's own status is an outcome to keep (issue 12.4).
    const outcome = result.fromUpstream === true && call.failure === undefined;
    const metadata = [
      ...(result.header ? result.header.entries() : []),
      ...result.trailer.entries(),
    ];
    // West's own ending answers the one attempt waiting, if only one is: another attempt
    // with this key (a retry) must not take it for its outcome.
    const end = replies.endRecord(
      call,
      code,
      message,
      metadata,
      outcome ? undefined : soleAttempt(call),
    );
    const entry = await journalEnd(call, outcome, code);
    if (entry === "stopped" || !(await writeReply(call, end))) return abandonCall(call);
    if (entry === "after-reply") {
      const written = await journal.finished(call, code, call.replyBytes, undefined);
      if (written === "stopped") return abandonCall(call);
    }
    observeEnd(call, code, message, result);
    const left: EndedCall = {
      id: call.id,
      kind: outcome ? "replayable" : "unsettled",
      replyTo: call.replyTo,
      keyed: call.keyed,
      attempt: call.startedWritten ? call.attempt : call.attempt - 1,
      // Un-keyed calls come back only as re-deliveries, which need no copy.
      reply: outcome && call.keyed ? call.reply : undefined,
      tooLarge: outcome && call.reply === undefined,
      replyBytes: call.replyBytes,
      replyWritten: true,
      position: call.position,
      finishedAt: Date.now(),
      requestEnded: call.requestEnded,
      tail: [],
      duplicateOpen: call.duplicateOpen,
      duplicate: [],
      settling: undefined,
    };
    forget(call);
    if (call.requestEnded) commits.complete(call.spans);
    else left.tail = call.spans;
    ended.put(left);
  };

  /**
   * The changelog's entry for how the call ended, written before its end record: FINISHED
   * with the reply, ABORTED, or none; "after-reply" for a reply too large to keep (its
   * FINISHED follows the end record).
   */
  const journalEnd = async (
    call: RunningCall,
    outcome: boolean,
    code: number,
  ): Promise<"written" | "after-reply" | "stopped"> => {
    if (!journal.durable) return "written";
    if (!outcome) {
      if (!call.startedWritten) return "written";
      return (await journal.aborted(call)) === "stopped" ? "stopped" : "written";
    }
    const written = call.reply
      ? await journal.finished(call, code, call.replyBytes, call.reply)
      : "too-large";
    if (written !== "too-large") return written;
    call.reply = undefined;
    return "after-reply";
  };

  /** The end record (with a held single reply), then any reply a duplicate may have missed. */
  const writeReply = async (call: RunningCall, end: ContractRecord) => {
    const records = call.heldReply ? [call.heldReply, end] : [end];
    call.heldReply = undefined;
    // After a lost message the end waits: the reply is written whole again below.
    if (!call.sendFailed) {
      const sentAt = performance.now();
      try {
        await replies.send(call.replyTo, records);
        metrics?.produced((performance.now() - sentAt) / 1000);
      } catch (error) {
        call.sendFailed = true;
        call.sendError ??= error;
      }
    }
    // Part of the reply may be missing: write it whole again rather than leave a gap; a
    // reply too large to keep cannot be, and its end says so instead of the upstream's OK.
    if (call.sendFailed) {
      const whole = call.reply ?? [replies.lostEnd(call.replyTo, call.id, call.sendError)];
      if (!(await replies.writeReliably(call.replyTo, whole))) return false;
    }
    for (let i = 0; i < call.replays; i++) {
      const again = call.reply
        ? replies.replay(call.replyTo, call.reply, call.id)
        : answerTooLarge(call.replyTo, call.id, call.replyBytes);
      if (!(await again)) return false;
    }
    return true;
  };

  /** Takes the call out of the running ones (unless a new call has its id by now). */
  const forget = (call: RunningCall) => {
    if (calls.get(call.id) === call) calls.delete(call.id);
  };

  const abandonCall = (call: RunningCall) => {
    forget(call);
    call.span?.end(Code.Unavailable, "west stopped before the reply was written");
  };

  /** Records a finished call: metrics, span, its log line, and an unreachable upstream. */
  const observeEnd = (
    call: RunningCall,
    code: number,
    message: string | undefined,
    result: UpstreamResult,
  ) => {
    const seconds = (performance.now() - call.startedAt) / 1000;
    call.stats?.finished(code, seconds, Math.max(0, result.attempts - 1));
    call.span?.end(code, message ?? "");
    // The line's fields are made only for a line that is written (most calls log none).
    const fields = () => ({
      correlationId: call.id,
      service: call.parsed.service,
      method: call.parsed.method,
      status: code,
      ...(message ? { message } : {}),
      durationMs: Math.round(seconds * 1e6) / 1e3,
      attempts: result.attempts,
      ...(call.attempt > 1 ? { previousAttempts: call.attempt - 1 } : {}),
      replyRecords: call.replyCount,
    });
    if (code === Code.Unavailable && result.attempts > 0 && !call.answered) {
      logger.error("upstream unreachable", { ...fields(), upstream: call.route.with.authority });
    } else if (logger.enabled(opts.callLogLevel)) {
      logger[opts.callLogLevel]("west call", fields());
    }
  };

  /** West's own answer; a call the upstream may have seen first gets its ABORTED entry. */
  const answerAfterAborted = async (
    entry: EndedCall,
    refusal: Refusal,
    attemptId: string | undefined,
  ): Promise<boolean> => {
    if (entry.attempt > 0 && journal.durable) {
      const aborted = await journal.aborted({
        ...entry,
        firstOffset: entry.position.offset,
      });
      if (aborted === "stopped") return false;
    }
    return replies.answer(entry.replyTo, entry.id, refusal.code, refusal.message, attemptId);
  };

  /**
   * A caller's cancel (a tombstone after the request's end): the call is cancelled unless
   * it is tagged for an attempt that has no part in it (an earlier attempt's late cancel)
   * or other attempts still wait for its answer.
   */
  const cancelAttempt = (call: RunningCall, attemptId: string | undefined) => {
    const attempts = call.attempts;
    if (attemptId !== undefined && attempts !== undefined) {
      if (!attempts.has(attemptId)) {
        logger.debug("cancel of another attempt ignored", { correlationId: call.id });
        return;
      }
      if (attempts.size > 1) {
        attempts.delete(attemptId);
        logger.debug("one caller cancelled, others still wait", { correlationId: call.id });
        return;
      }
      // The last one stays: the CANCELLED end is tagged with it (soleAttempt).
    }
    logger.debug("request cancelled by its caller", { correlationId: call.id });
    fail(call, { code: Code.Canceled, message: "cancelled by the caller" });
  };

  const answerTooLarge = (replyTo: string, id: string, bytes: number) =>
    replies.answer(replyTo, id, Code.AlreadyExists, tooLargeMessage(bytes, options.replayMaxBytes));

  return {
    calls,
    get active() {
      return active;
    },
    start(init, route, attemptsBefore) {
      const { record, parsed } = init;
      const kind = methodKind(parsed);
      const call: RunningCall = {
        id: parsed.correlationId as string,
        replyTo: parsed.replyTo as string,
        route,
        parsed,
        position: positionOf(record),
        firstOffset: record.offset,
        spans: init.spans ?? [],
        keyed: init.keyed,
        attempts: parsed.attemptId === undefined ? undefined : new Set([parsed.attemptId]),
        duplicateAttempt: undefined,
        attempt: attemptsBefore + 1,
        startedWritten: false,
        messages: [],
        requestBytes: 0,
        answered: false,
        requestEnded: false,
        singleRequest: kind === "unary" || kind === "server_streaming",
        singleReply: kind === "unary" || kind === "client_streaming",
        heldReply: undefined,
        waiters: new Set(),
        abort: new CallCancel(),
        abandoned: false,
        reply: [],
        replyCount: 0,
        replyBytes: 0,
        sendFailed: false,
        duplicateOpen: false,
        duplicateNeedsReplay: false,
        replays: 0,
        done: Promise.resolve(),
        startedAt: performance.now(),
        stats: metrics?.call(parsed.service as string, parsed.method as string),
        span: tracer?.startClient({
          parent: traceparentOf(parsed.metadata),
          service: parsed.service as string,
          method: parsed.method as string,
          topic: record.topic,
          peer: route.with.authority,
        }),
      };
      call.span?.correlate(call.id);
      ended.delete(call.id);
      calls.set(call.id, call);
      commits.attach(call.spans, init.tracker, record.offset);
      if (record.value === null) call.requestEnded = true;
      else addMessage(call, record.value);
      const now = Date.now();
      const deadlineMs = clampDeadlineMs(parsed.deadlineMs ?? now + options.defaultTimeoutMs, now);
      active++;
      call.done = run(call, deadlineMs).finally(() => {
        active--;
        opts.onSlotFree();
      });
      call.done.catch((err) =>
        logger.error("call failed unexpectedly", { correlationId: call.id, error: err }),
      );
    },
    answer(init, refusal, attemptsBefore = 0) {
      const { record, parsed } = init;
      const id = parsed.correlationId as string;
      const entry: EndedCall = {
        id,
        kind: "unsettled",
        replyTo: parsed.replyTo as string,
        keyed: init.keyed,
        attempt: attemptsBefore,
        reply: undefined,
        tooLarge: false,
        replyBytes: 0,
        replyWritten: false,
        position: positionOf(record),
        finishedAt: Date.now(),
        requestEnded: record.value === null,
        tail: init.spans ?? [],
        duplicateOpen: false,
        duplicate: [],
        settling: undefined,
      };
      commits.attach(entry.tail, init.tracker, record.offset);
      entry.settling = answerAfterAborted(entry, refusal, parsed.attemptId).then((written) => {
        entry.settling = undefined;
        entry.replyWritten = written;
        return written;
      });
      if (entry.requestEnded) completeAfterSettled(entry, entry.tail, commits.complete);
      ended.put(entry);
      if (logger.enabled(opts.callLogLevel)) {
        logger[opts.callLogLevel]("west call", {
          correlationId: id,
          service: parsed.service,
          method: parsed.method,
          status: refusal.code,
          message: refusal.message,
          attempts: 0,
        });
      }
    },
    onRecord(call, tracker, record, attemptId) {
      const redelivered = isRedelivery(call.position, record);
      commits.attach(call.spans, tracker, record.offset);
      if (redelivered) return;
      call.position = positionOf(record);
      if (!call.requestEnded) {
        if (record.value === null) {
          call.requestEnded = true;
          wake(call);
        } else addMessage(call, record.value);
        return;
      }
      if (record.value !== null) {
        // A duplicate request (same idempotency key) joins this call; its messages are not
        // sent upstream. Its caller saw every reply record if none had been written yet.
        if (!call.duplicateOpen) {
          call.duplicateOpen = true;
          call.duplicateNeedsReplay = call.replyCount > 0;
          call.duplicateAttempt = attemptId;
          if (attemptId !== undefined) call.attempts?.add(attemptId);
        }
      } else if (
        call.duplicateOpen &&
        (attemptId === undefined || attemptId === call.duplicateAttempt)
      ) {
        call.duplicateOpen = false;
        if (call.duplicateNeedsReplay) call.replays++;
      } else {
        cancelAttempt(call, attemptId);
      }
    },
    abandon(which) {
      for (const call of calls.values()) {
        if (!which(call)) continue;
        call.abandoned = true;
        call.abort.abort();
        wake(call);
      }
    },
    async waitForCalls(ms) {
      if (calls.size === 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...calls.values()].map((c) => c.done)),
        new Promise((r) => {
          timer = setTimeout(r, ms);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/** The one attempt a call answers, when exactly one is tagged and waiting. */
function soleAttempt(call: RunningCall): string | undefined {
  if (call.attempts?.size !== 1) return undefined;
  return call.attempts.values().next().value;
}

/** The status message of a duplicate whose first call's reply was too large to keep. */
export function tooLargeMessage(replyBytes: number, keepMaxBytes: number): string {
  return (
    `already executed within the idempotency window; its reply (${replyBytes} bytes) was ` +
    `larger than the ${keepMaxBytes} bytes kept for replay, so it cannot be written again`
  );
}
