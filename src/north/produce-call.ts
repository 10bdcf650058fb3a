/**
 * One gRPC call over a `produce` route (docs/contract.md: Request records to North, Where we differ from Zilla), independent of the wire protocol:
 * request messages (bytes) become request records as they arrive; reply records become
 * response headers, messages and the final status as they arrive, whatever the method's
 * streaming kind. The protocol side feeds `message`/`halfClose`/`abort` and receives the
 * reply through a `ReplySink`. Event-driven rather than async iterators, so a pending call
 * holds a few small objects, not a pipeline of suspended generators.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import {
  acksToNumber,
  type EdgeLimits,
  type GrpcKafkaOptions,
  type ProduceWith,
} from "../config/types.ts";
import { type GrpcStatus, statusOk } from "../grpc/status.ts";
import { correlationIdOf, routeCorrelationDigest } from "../kafka/correlation-id.ts";
import { META_PREFIX } from "../kafka/header-names.ts";
import {
  type ContractRecord,
  isResponseMetadata,
  parseReplyHeaders,
  type RecordHeader,
  requestHeaders,
  requestKey,
} from "../kafka/record-contract.ts";
import {
  noTicket,
  type ReplyReader,
  type ReplyRecord,
  type ReplyWaiter,
} from "../kafka/reply-reader.ts";
import type {
  AcksNumber,
  ProduceError,
  ProduceListener,
  RequestProducer,
} from "../kafka/request-producer.ts";
import type { NorthCallStats, NorthMetrics } from "../ops/gateway-metrics.ts";
import type { Logger, LogLevel } from "../ops/logger.ts";
import { type CallSpan, type CallTracer, traceparentOf, withTraceparent } from "../ops/tracing.ts";
import { callDeadlines, type Expiring } from "../runtime/deadline-queue.ts";
import {
  connectErrorFromProduce,
  connectErrorFromReader,
  replyTimeoutError,
} from "./north-error.ts";

export type MetadataEntries = ReadonlyArray<readonly [string, string]>;

/** Where a call's reply goes; the protocol side writes it to the wire. */
export interface ReplySink {
  /** Response metadata, once, before the first message (not called when the reply has none). */
  headers(metadata: MetadataEntries): void;
  /** One response message (protobuf bytes). */
  message(bytes: Uint8Array): void;
  /** The call ended with this gRPC status (0 = OK); called exactly once, last. */
  end(code: GrpcStatus, message: string, trailers: MetadataEntries): void;
}

/** The request side of a running call. */
export interface ProduceCall {
  readonly correlationId: string;
  /** One request message (protobuf bytes). */
  message(bytes: Uint8Array): void;
  /** The client half-closed: no more messages. */
  halfClose(): void;
  /**
   * Ends the call now with this status (client gone, protocol error, shutdown). West is told
   * to cancel the upstream call when `cancelUpstream` (default: for CANCELLED).
   */
  abort(code: Code, message: string, cancelUpstream?: boolean): void;
  /** Its place in `CallDeps.active` (-1: not in it). */
  activeIndex: number;
}

/** What every call of one north instance shares. */
export interface CallDeps {
  producer: RequestProducer;
  /** Absent when no route has a reply topic. */
  reader: ReplyReader | undefined;
  options: GrpcKafkaOptions;
  /** The front door's limits (the metadata a record may carry, among others). */
  limits: EdgeLimits;
  logger: Logger;
  /** Calls in progress, so that shutdown can end them. */
  active: ActiveCalls;
  /** Call metrics by method; absent: nothing is recorded. */
  metrics?: NorthMetrics | undefined;
  /** Makes a span per call; absent: no tracing. */
  tracer?: CallTracer | undefined;
  /** The level of the one line logged per call (default debug). */
  callLogLevel?: LogLevel | undefined;
}

export interface ProduceCallInit {
  deps: CallDeps;
  route: ProduceWith;
  /** Full service name, e.g. "grpc.examples.echo.Echo". */
  service: string;
  /** Simple method name, e.g. "UnaryEcho". */
  method: string;
  /** Request metadata entries in the order received (non-metadata headers are filtered here). */
  metadata: MetadataEntries;
  /** The client's deadline, if it set one. */
  timeoutMs: number | undefined;
  sink: ReplySink;
  /** On a guarded route: the caller's identity per guard, which scopes the correlation id. */
  identities?: ReadonlyArray<readonly [guard: string, identity: string]> | undefined;
}

const empty = new Uint8Array(0);

/**
 * The calls in progress: an array in which each call knows its place (`activeIndex`), so a
 * call costs one slot, where a `Set` took about 50 bytes a call (north may hold 100,000).
 */
export class ActiveCalls {
  private calls: ProduceCall[] = [];

  get size(): number {
    return this.calls.length;
  }

  add(call: ProduceCall): void {
    if (call.activeIndex >= 0) return;
    call.activeIndex = this.calls.length;
    this.calls.push(call);
  }

  delete(call: ProduceCall): void {
    const at = call.activeIndex;
    if (at < 0 || this.calls[at] !== call) return;
    call.activeIndex = -1;
    const last = this.calls.pop() as ProduceCall;
    if (last !== call) {
      this.calls[at] = last;
      last.activeIndex = at;
    }
  }

  /** The calls in progress now (a copy: ending them changes the set). */
  values(): ProduceCall[] {
    return this.calls.slice();
  }
}

/** Starts a call: registers for its reply (request/reply routes) before anything is produced. */
export function startProduceCall(init: ProduceCallInit): ProduceCall {
  const call = init.route.replyTo === undefined ? new OnewayCall(init) : new RequestReplyCall(init);
  init.deps.active.add(call);
  return call;
}

/** The identity and headers every record of a call carries (docs/contract.md: Request records, The correlation id). */
class RecordTemplate {
  readonly correlationId: string;
  readonly topic: string;
  readonly acks: AcksNumber;
  /** The client's deadline (ms since the epoch): the call's records are retried until then. */
  readonly deadlineMs: number | undefined;
  /** Bytes of the `meta:*` headers (names and values), which every record of the call repeats. */
  readonly metadataBytes: number;
  /**
   * This caller's attempt of a keyed call (docs/contract.md: difference 9): attempts with one
   * idempotency key share the correlation id, and answers west gives one of them carry it.
   */
  readonly attemptId: string | undefined;
  private readonly key: string;
  private readonly headers: RecordHeader[];

  constructor(init: ProduceCallInit, metadata: MetadataEntries) {
    const { deps, route } = init;
    const names = deps.options.correlation.headers;
    this.deadlineMs = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
    const key = idempotencyKey(init.metadata, deps.options.idempotency.metadata);
    this.attemptId = key === undefined ? undefined : randomUUID();
    const digest = routeCorrelationDigest(route, {
      service: init.service,
      method: init.method,
      replyTo: route.replyTo,
      overrideValues: route.overrides ? Object.values(route.overrides) : undefined,
      headers: names,
      guarded: init.identities,
    });
    // Its replies land on a partition this instance reads (docs/scaling.md).
    const chooseUuid =
      key !== undefined || route.replyTo === undefined
        ? undefined
        : deps.reader?.uuidChooser(route.replyTo);
    this.correlationId = correlationIdOf(digest, key, chooseUuid);
    this.headers = requestHeaders({
      route,
      names,
      service: init.service,
      method: init.method,
      correlationId: this.correlationId,
      deadlineMs: this.deadlineMs,
      attemptId: this.attemptId,
      metadata,
    });
    let metadataBytes = 0;
    for (const [name, value] of this.headers) {
      if (name.startsWith(META_PREFIX)) metadataBytes += name.length + value.length;
    }
    this.metadataBytes = metadataBytes;
    this.key = requestKey(route, this.correlationId);
    this.topic = route.topic;
    this.acks = acksToNumber(route.acks);
  }

  record(value: Uint8Array | null): ContractRecord {
    return { key: this.key, value, headers: this.headers };
  }
}

/** The first value of the idempotency metadata entry, if the request has one. */
function idempotencyKey(metadata: MetadataEntries, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of metadata) if (n.toLowerCase() === lower) return v;
  return undefined;
}

/**
 * What every call records about itself: its metrics, its span and its log line. A base class
 * rather than a helper object, so observing a call costs a few fields, not an allocation.
 */
abstract class ObservedCall implements ProduceListener, Expiring {
  readonly correlationId: string;
  protected readonly deps: CallDeps;
  protected readonly template: RecordTemplate;
  /** Why the call is refused before anything is produced (too much metadata), if it is. */
  protected readonly refusal: string | undefined;
  private readonly service: string;
  private readonly method: string;
  private readonly stats: NorthCallStats | undefined;
  private readonly span: CallSpan | undefined;
  private readonly startedAt: number;
  /** The call ended (`finish` ran): nothing more is written to its sink. */
  protected finished = false;
  /** Its place in the shared deadline queue (deadline-queue.ts). */
  dueMs = 0;
  queueIndex = -1;
  /** Its place in `CallDeps.active`. */
  activeIndex = -1;
  protected requests = 0;
  protected requestBytes = 0;
  protected responses = 0;
  protected responseBytes = 0;

  constructor(init: ProduceCallInit) {
    const deps = init.deps;
    this.deps = deps;
    this.service = init.service;
    this.method = init.method;
    this.startedAt = performance.now();
    this.stats = deps.metrics?.call(init.service, init.method);
    this.stats?.started();
    let metadata = init.metadata;
    if (deps.tracer) {
      this.span = deps.tracer.startServer({
        parent: traceparentOf(metadata),
        service: init.service,
        method: init.method,
        topic: init.route.topic,
      });
      // The records carry this span as the parent of west's: one trace across Kafka.
      metadata = withTraceparent(metadata, this.span.traceparent);
    }
    this.template = new RecordTemplate(init, metadata);
    this.correlationId = this.template.correlationId;
    const maxMetadataBytes = deps.limits.maxMetadataBytes;
    this.refusal =
      this.template.metadataBytes > maxMetadataBytes
        ? `request metadata of ${this.template.metadataBytes} bytes exceeds the ${maxMetadataBytes} bytes a request record may carry (--max-metadata-bytes)`
        : undefined;
    this.span?.correlate(this.correlationId);
  }

  /**
   * Queues one record; the call hears the outcome itself (`onProduced`, `onProduceFailed`),
   * so a record in flight costs no promise or closure.
   */
  protected send(value: Uint8Array | null): void {
    const t = this.template;
    const deadlineMs = t.deadlineMs ?? Number.POSITIVE_INFINITY;
    this.deps.producer.submit(t.topic, t.acks, t.record(value), deadlineMs, this);
  }

  /** Kafka acknowledged one of the call's records (its latency is recorded). */
  onProduced(seconds: number): void {
    this.deps.metrics?.produced(seconds);
    this.acknowledged();
  }

  /** A record could not be produced: the call ends with the matching status. */
  onProduceFailed(error: ProduceError): void {
    const failure = connectErrorFromProduce(error);
    if (this.finished) return;
    this.logFailure("request produce failed", failure.code, error);
    this.produceFailed();
    this.finish(failure.code, failure.rawMessage);
  }

  /** Before `finish`, when a record failed: what the call writes instead of its usual end. */
  protected produceFailed(): void {}

  /** One record acknowledged (after its metrics). */
  protected abstract acknowledged(): void;
  /** The call's deadline ran out (the shared deadline queue calls it). */
  abstract expire(): void;
  /** Ends the call with this status, once; later calls do nothing. */
  protected abstract finish(code: GrpcStatus, message: string): void;

  /** Records the call's end: metrics, span, and its log line. */
  protected observeEnd(code: GrpcStatus, message: string): void {
    const seconds = (performance.now() - this.startedAt) / 1000;
    this.stats?.finished(
      code,
      seconds,
      this.requestBytes,
      this.responseBytes,
      this.requests,
      this.responses,
    );
    this.span?.end(code, message);
    const logger = this.deps.logger;
    const level = this.deps.callLogLevel ?? "debug";
    if (logger.enabled(level)) {
      logger[level]("north call", {
        correlationId: this.correlationId,
        service: this.service,
        method: this.method,
        status: code,
        ...(message !== "" ? { message } : {}),
        durationMs: Math.round(seconds * 1e6) / 1e3,
        requests: this.requests,
        responses: this.responses,
      });
    }
  }

  /** Logs a failure of the gateway itself (not the upstream's status), always. */
  protected logFailure(what: string, code: GrpcStatus, error: unknown): void {
    this.deps.logger.error(what, {
      correlationId: this.correlationId,
      service: this.service,
      method: this.method,
      status: code,
      error,
    });
  }
}

/**
 * Request/reply: every request stream ends with one tombstone, whether the client half-closed,
 * cancelled, ran out of time, or the reply ended first; a client cancel adds a second one.
 */
class RequestReplyCall extends ObservedCall implements ProduceCall, ReplyWaiter {
  private readonly sink: ReplySink;
  /** The reply reader's ticket while the call waits for its reply (see `waitFor`). */
  private readonly ticket: number = noTicket;
  private readonly replyTopic: string | undefined;
  /** The default reply timeout when it is what runs out, else -1 (the client's deadline). */
  private timeoutKind = -1;
  private requestEnded = false;
  private headersSent = false;
  /** Records of the call Kafka acknowledged. */
  private acked = 0;

  constructor(init: ProduceCallInit) {
    super(init);
    this.sink = init.sink;
    const refusal = this.refusal;
    if (refusal !== undefined) {
      // Nothing is produced: the request is over before it began.
      this.requestEnded = true;
      this.replyTopic = undefined;
      queueMicrotask(() => this.finish(Code.ResourceExhausted, refusal));
      return;
    }
    const reader = init.deps.reader;
    this.replyTopic = init.route.replyTo;
    // Registered before the first record leaves, so even an instant reply finds its call.
    if (reader) this.ticket = reader.waitFor(this.correlationId, this, this.replyTopic);
    // The client's deadline, else docs/contract.md: difference 7's default, so waiters cannot pile up.
    const defaultMs = init.deps.options.defaultTimeoutMs;
    if (init.timeoutMs !== undefined) {
      callDeadlines.add(this, init.timeoutMs);
    } else if (defaultMs > 0) {
      this.timeoutKind = defaultMs;
      callDeadlines.add(this, defaultMs);
    }
    if (!reader) queueMicrotask(() => this.finish(Code.Internal, "no reply reader for this route"));
  }

  message(bytes: Uint8Array): void {
    if (!this.requestEnded) this.produce(bytes);
  }

  halfClose(): void {
    this.endRequest();
  }

  abort(code: Code, message: string, cancelUpstream = code === Code.Canceled): void {
    if (this.finished) return;
    this.finish(code, message);
    // A cancelled caller gets one more end marker after the request's own: a single marker
    // only ends the request stream, the second tells west to cancel the upstream call.
    if (cancelUpstream) this.produce(null);
  }

  onRecord(reply: ReplyRecord): void {
    if (this.finished) return;
    const parsed = parseReplyHeaders(reply.headers, this.deps.options.correlation.headers);
    const own = this.template.attemptId;
    if (parsed.attemptId !== undefined && own !== undefined && parsed.attemptId !== own) {
      // West's answer to another attempt with this key (one whose deadline passed before
      // west read it, say): not this caller's outcome.
      return;
    }
    if (reply.value === null) {
      const trailers = parsed.metadata.filter(([name]) => isResponseMetadata(name));
      this.finish(parsed.status ?? statusOk, parsed.message ?? "", trailers);
      return;
    }
    if (reply.value.byteLength > this.deps.options.maxMessageBytes) {
      this.finish(
        Code.ResourceExhausted,
        `reply message of ${reply.value.byteLength} bytes exceeds ${this.deps.options.maxMessageBytes}`,
      );
      return;
    }
    if (!this.headersSent) {
      this.headersSent = true;
      // Headers leave with the first message, so the first record's metadata is the headers.
      this.sink.headers(parsed.metadata.filter(([name]) => isResponseMetadata(name)));
    }
    this.responses++;
    this.responseBytes += reply.value.byteLength;
    this.sink.message(reply.value);
  }

  onFailure(error: Error): void {
    const failure = connectErrorFromReader(error);
    if (!this.finished) this.logFailure("reply reader failed", failure.code, error);
    this.finish(failure.code, failure.rawMessage);
  }

  private produce(value: Uint8Array | null): void {
    if (this.refusal !== undefined) return;
    if (value !== null) {
      this.requests++;
      this.requestBytes += value.byteLength;
    }
    this.send(value);
  }

  protected acknowledged(): void {
    this.acked++;
  }

  /**
   * A record failed, and none after it was written (the producer drops them). West may hold
   * the records before it: if the request simply ended there, the upstream would run the call
   * on a request with a message missing. An end marker and a cancel together (one batch, one
   * fetch for west, which then resets the upstream stream instead of ending it) say the call
   * is off (they are one item of the producer, so one batch whatever else is queued); a call
   * with nothing acknowledged gets nothing more (nothing of it reached west).
   */
  protected override produceFailed(): void {
    this.requestEnded = true;
    if (this.acked === 0) return;
    const t = this.template;
    const both = [t.record(null), t.record(null)];
    this.deps.producer.submit(
      t.topic,
      t.acks,
      both,
      t.deadlineMs ?? Number.POSITIVE_INFINITY,
      this,
    );
  }

  private endRequest(): void {
    if (this.requestEnded) return;
    this.requestEnded = true;
    this.produce(null);
  }

  /** The call's deadline (or the default reply timeout) ran out. */
  expire(): void {
    const defaultMs = this.timeoutKind;
    if (defaultMs >= 0) {
      const error = replyTimeoutError(defaultMs);
      // No reply in time without a client deadline: west is likely down or far behind.
      if (!this.finished) this.logFailure("no reply in time", error.code, error.rawMessage);
      this.finish(error.code, error.rawMessage);
    } else {
      this.finish(Code.DeadlineExceeded, "deadline exceeded");
    }
  }

  protected finish(code: GrpcStatus, message: string, trailers: MetadataEntries = []): void {
    if (this.finished) return;
    this.finished = true;
    callDeadlines.remove(this);
    const reader = this.deps.reader;
    if (reader && this.ticket !== noTicket) {
      reader.stopWaiting(this.correlationId, this, this.replyTopic, this.ticket);
    }
    this.deps.active.delete(this);
    this.endRequest();
    this.observeEnd(code, message);
    this.sink.end(code, message, trailers);
  }
}

/** Oneway (no reply-to): produce every message; after half-close, one empty message and OK. */
class OnewayCall extends ObservedCall implements ProduceCall {
  private readonly sink: ReplySink;
  private unacked = 0;
  private halfClosed = false;

  constructor(init: ProduceCallInit) {
    super(init);
    this.sink = init.sink;
    const refusal = this.refusal;
    if (refusal !== undefined) {
      queueMicrotask(() => this.finish(Code.ResourceExhausted, refusal));
      return;
    }
    if (init.timeoutMs !== undefined) callDeadlines.add(this, init.timeoutMs);
  }

  expire(): void {
    this.finish(Code.DeadlineExceeded, "deadline exceeded");
  }

  message(bytes: Uint8Array): void {
    if (this.finished || this.halfClosed || this.refusal !== undefined) return;
    this.unacked++;
    this.requests++;
    this.requestBytes += bytes.byteLength;
    this.send(bytes);
  }

  protected acknowledged(): void {
    this.unacked--;
    this.answerIfDone();
  }

  halfClose(): void {
    this.halfClosed = true;
    this.answerIfDone();
  }

  abort(code: Code, message: string): void {
    this.finish(code, message);
  }

  private answerIfDone(): void {
    if (!this.halfClosed || this.unacked > 0 || this.finished || this.refusal !== undefined) return;
    this.responses++;
    this.sink.message(empty);
    this.finish(statusOk, "");
  }

  protected finish(code: GrpcStatus, message: string): void {
    if (this.finished) return;
    this.finished = true;
    callDeadlines.remove(this);
    this.deps.active.delete(this);
    this.observeEnd(code, message);
    this.sink.end(code, message, []);
  }
}
