/**
 * West, the remote server (SPEC §4, §6, §8): a consumer-group member that turns request
 * records into upstream gRPC calls and the calls' responses into reply records.
 *
 * Per correlation id there is one call: records with that id are its request messages in
 * record order, the first tombstone is the request's end (half-close). A tombstone after
 * the end is the caller's cancel or deadline (north writes one more), and aborts the call.
 * A request whose id is already running after its end joins it (SPEC §8.4); a request
 * whose id finished within the idempotency window gets the stored reply again.
 *
 * Offsets are committed only once every record below the commit point has had its reply
 * acknowledged by Kafka (see commit-tracker.ts), so a crash re-delivers instead of losing.
 */
import { Code } from "@connectrpc/connect";
import type { KafkaGrpcRoute, WestConfig } from "../config/types.ts";
import {
  type ConsumedRecord,
  type GroupConsumer,
  isRebalancing,
  type ReadinessWatch,
  startGroupConsumer,
  type TopicPartition,
} from "../kafka/group-consumer.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import {
  type ContractRecord,
  type ParsedRequest,
  parseRequestHeaders,
  replyEndHeaders,
  replyHeaders,
} from "../kafka/record-contract.ts";
import { type ReplyProducer, startReplyProducer } from "../kafka/reply-producer.ts";
import type { LagEntry, UpstreamCallStats, WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger, LogLevel } from "../ops/logger.ts";
import { type CallSpan, type CallTracer, traceparentOf, withTraceparent } from "../ops/tracing.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import {
  createPartitionTracker,
  type OffsetSpan,
  type PartitionTracker,
} from "./commit-tracker.ts";
import { createReplyStore } from "./reply-store.ts";
import {
  type CancelSignal,
  callUpstream,
  checkMessageBytes,
  createUpstreamPool,
  type RequestChunk,
  type UpstreamResult,
} from "./upstream-client.ts";
import { matchWestRoute, westTopics } from "./west-routes.ts";

export interface West {
  /** The consumer group id, `zilla:<namespace>-<binding>`. */
  readonly groupId: string;
  /** The request topics it consumes (fixed for its lifetime). */
  readonly topics: readonly string[];
  /**
   * Routes records by `routes` from the next new call on. Throws, changing nothing, when they
   * would consume other topics (that takes a restart).
   */
  update(routes: KafkaGrpcRoute[]): void;
  /** Lag of the assigned partitions: high watermark minus the committed offset. */
  lag(): Promise<LagEntry[]>;
  /** Stops consuming, lets calls in flight finish for `graceMs`, commits, leaves the group. */
  close(graceMs?: number): Promise<void>;
  /**
   * Stops as a killed process would: no more replies, no commit. The group still sees a
   * clean leave, so tests need not wait for a session timeout. For crash scenarios only.
   */
  crash(): Promise<void>;
}

/** Knobs with production defaults; tests shorten the group's timings. */
export interface WestTuning {
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** How often done offsets are committed when no call finishes (default 1 s). */
  commitIntervalMs?: number;
  /** How long calls may finish when partitions are revoked (default 2 s). */
  rebalanceGraceMs?: number;
  /** How long `close()` lets calls finish (default 5 s). */
  closeGraceMs?: number;
  /** Bounds of the idempotency store (defaults 10 000 replies, 64 MiB). */
  storeMaxEntries?: number;
  storeMaxBytes?: number;
  /**
   * How long a finished call waits for its request's end tombstone before its offsets may
   * be committed anyway (the caller's gateway may be gone; default 30 s).
   */
  requestTailGraceMs?: number;
  /**
   * Bounds of the records of new calls held while `maxConcurrentCalls` calls run (defaults:
   * 4096 records, 16 MiB). Past them the partition pauses.
   */
  heldRecordsMax?: number;
  heldBytesMax?: number;
}

export interface StartWestOptions {
  config: WestConfig;
  /** The config's `name`; the group id is `zilla:<namespace>-<binding>`. */
  namespace: string;
  kafka: Kafka;
  /** Not needed for calls: messages pass through as bytes (see upstream-client.ts). */
  registry: ServiceRegistry;
  logger: Logger;
  tuning?: WestTuning;
  /** Records upstream call metrics, replays, latencies and lag (absent: none). */
  metrics?: WestMetrics;
  /** Makes a span per upstream call (absent: no tracing). */
  tracer?: CallTracer;
  /** The level of the one log line per call (default debug). */
  callLogLevel?: LogLevel;
  /** Where the group member reports why it cannot serve (rebalancing too long, a partition without a position). */
  readiness?: ReadinessWatch;
}

interface SpanRef {
  tracker: PartitionTracker;
  span: OffsetSpan;
}

/** A new call's records read while every slot was taken. */
interface HeldCall {
  /** The partition's key (tpKey). */
  key: string;
  tracker: PartitionTracker;
  records: { record: ConsumedRecord; parsed: ParsedRequest }[];
  /** The records' offsets, open (uncommittable) until the call is done. */
  spans: SpanRef[];
  bytes: number;
}

/** Where a call's latest record was, to tell a re-delivery from a new record. */
interface Position {
  topic: string;
  partition: number;
  offset: bigint;
}

interface RunningCall {
  id: string;
  replyTo: string;
  route: KafkaGrpcRoute;
  parsed: ParsedRequest;
  position: Position;
  spans: SpanRef[];
  /** Request messages in order; kept for a retry until the upstream answered. */
  messages: (Uint8Array | undefined)[];
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
  /** Closing or crashing: end without a reply, leave the records uncommitted. */
  abandoned: boolean;
  /** The reply so far, kept for replays; undefined once too large to keep. */
  reply: ContractRecord[] | undefined;
  replyCount: number;
  replyBytes: number;
  /** A reply record's batch failed (kafkajs gave up): the reply may have a gap. */
  sendFailed: boolean;
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

interface FinishedCall {
  id: string;
  replyTo: string;
  /** Undefined when the reply was too large to keep: a duplicate is then executed again. */
  reply: ContractRecord[] | undefined;
  position: Position;
  finishedAt: number;
  requestEnded: boolean;
  /** The call's own spans, still open while its request has not ended. */
  tail: SpanRef[];
  duplicateOpen: boolean;
  duplicate: SpanRef[];
}

const noServiceMessage = "request record has no service or method header";

/**
 * A call's cancel switch: what `callUpstream` needs of an AbortSignal, as a plain object
 * (an AbortController and its signal per call cost more than the rest of the call's state).
 */
class CallCancel implements CancelSignal {
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

/** Starts west and resolves once its consumer group has given it an assignment. */
export async function startWest(opts: StartWestOptions): Promise<West> {
  const { config, kafka } = opts;
  const options = config.options;
  const names = options.correlation.headers;
  const tuning = opts.tuning ?? {};
  const logger = opts.logger.child({ binding: config.binding });
  const groupId = `zilla:${opts.namespace}-${config.binding}`;
  const windowMs = options.idempotencyWindowMs;
  const tailGraceMs = tuning.requestTailGraceMs ?? 30_000;
  const storeMaxBytes = tuning.storeMaxBytes ?? 64 * 1024 * 1024;
  const { metrics, tracer } = opts;
  const callLogLevel = opts.callLogLevel ?? "debug";
  let routes = config.routes;
  const topics = westTopics(routes);

  const pool = createUpstreamPool();
  const producer: ReplyProducer = await startReplyProducer(kafka, { acks: options.acks, logger });
  const trackers = new Map<string, PartitionTracker>();
  const committed = new Map<string, bigint>();
  let assigned: TopicPartition[] = [];
  const calls = new Map<string, RunningCall>();
  const openTails = new Set<FinishedCall>();
  const store = createReplyStore<FinishedCall>({
    // Kept at least a while even without a window, so a call that finished before its
    // request's end still recognises its own late records.
    retentionMs: Math.max(windowMs, tailGraceMs),
    maxEntries: tuning.storeMaxEntries ?? 10_000,
    maxBytes: storeMaxBytes,
    onEvict: (_id, value) => {
      const entry = value as FinishedCall;
      openTails.delete(entry);
      completeSpans(entry.tail);
      completeSpans(entry.duplicate);
    },
  });
  let closing = false;
  let crashed = false;

  /** The kind of a generated method (undefined for methods not in gen/: they stream). */
  const methodKind = (parsed: ParsedRequest): string | undefined => {
    if (parsed.service === undefined || parsed.method === undefined) return undefined;
    const service = opts.registry.services.get(parsed.service);
    return service?.methods.find((m) => m.name === parsed.method)?.methodKind;
  };

  // ---- concurrency bound -------------------------------------------------------------
  // At most maxConcurrentCalls upstream calls run. Records of calls already running are
  // always read (a client stream's next messages and its end sit further on in the same
  // partition, behind other calls' records); records of new calls past the bound are held,
  // in arrival order, until a call ends. Only when the held records reach their bounds is
  // a record refused, which pauses its partition until there is room again.
  let active = 0;
  const heldRecordsMax = tuning.heldRecordsMax ?? 4096;
  const heldBytesMax = tuning.heldBytesMax ?? 16 * 1024 * 1024;
  const held = new Map<string, HeldCall>();
  let heldRecords = 0;
  let heldBytes = 0;

  /** Holds a record of a call waiting for a slot; false when the bounds leave no room. */
  const hold = (record: ConsumedRecord, tracker: PartitionTracker, parsed: ParsedRequest) => {
    const bytes = consumedBytes(record);
    if (heldRecords > 0 && (heldRecords >= heldRecordsMax || heldBytes + bytes > heldBytesMax)) {
      return false;
    }
    const id = parsed.correlationId as string;
    let entry = held.get(id);
    if (!entry) {
      entry = { key: tpKey(record), tracker, records: [], spans: [], bytes: 0 };
      held.set(id, entry);
    }
    entry.records.push({ record, parsed });
    // Seen and uncommittable from now on, though the call starts later.
    attach(entry.spans, tracker, record.offset);
    entry.bytes += bytes;
    heldRecords++;
    heldBytes += bytes;
    return true;
  };

  /** Starts held calls while slots are free, then lets refused partitions be read again. */
  const startHeld = () => {
    for (const [id, entry] of held) {
      if (active >= options.maxConcurrentCalls || closing) break;
      held.delete(id);
      heldRecords -= entry.records.length;
      heldBytes -= entry.bytes;
      // A revoked partition's records are the new owner's now.
      if (trackers.get(entry.key) !== entry.tracker) continue;
      for (const { record, parsed } of entry.records) {
        dispatch(record, entry.tracker, parsed, entry.spans);
      }
    }
    if (heldRecords < heldRecordsMax && heldBytes < heldBytesMax) consumer?.resumeRefused();
  };

  const releaseSlot = () => {
    active--;
    if (held.size > 0) startHeld();
  };

  // ---- commits -----------------------------------------------------------------------
  let consumer: GroupConsumer | undefined;
  let commitRunning: Promise<void> = Promise.resolve();
  let commitQueued: Promise<void> | undefined;
  let commitScheduled = false;

  const doCommit = async () => {
    if (!consumer || crashed) return;
    const offsets: { topic: string; partition: number; offset: bigint }[] = [];
    for (const tp of assigned) {
      const key = tpKey(tp);
      const tracker = trackers.get(key);
      if (!tracker) continue;
      const cut = tracker.committable();
      if (cut > (committed.get(key) ?? -1n)) offsets.push({ ...tp, offset: cut });
    }
    if (offsets.length === 0) return;
    try {
      await consumer.commit(offsets);
      for (const o of offsets) {
        const key = tpKey(o);
        committed.set(key, o.offset);
        trackers.get(key)?.release(o.offset);
      }
    } catch (err) {
      // A commit refused mid-rebalance is retried by the next one; nothing is lost.
      logger.debug("offset commit failed", { error: err });
    }
  };
  /** Commits everything done so far; resolves once that commit was answered. */
  const commitNow = (): Promise<void> => {
    if (commitQueued) return commitQueued;
    const queued = commitRunning.then(() => {
      commitQueued = undefined;
      commitRunning = doCommit();
      return commitRunning;
    });
    commitQueued = queued;
    return queued;
  };
  // Finished calls are committed together a moment later rather than one commit each: a
  // commit is a Kafka round trip, and under load one per call costs as much as the call.
  const commitDelayMs = Math.min(100, tuning.commitIntervalMs ?? 1_000);
  const scheduleCommit = () => {
    if (commitScheduled) return;
    commitScheduled = true;
    setTimeout(() => {
      commitScheduled = false;
      void commitNow();
    }, commitDelayMs).unref?.();
  };

  function completeSpans(spans: SpanRef[]) {
    for (const ref of spans) ref.span.done = true;
    if (spans.length > 0) scheduleCommit();
  }

  /** Adds a record to the spans of one call (one span per partition tracker). */
  function attach(spans: SpanRef[], tracker: PartitionTracker, offset: bigint) {
    const ref = spans.find((s) => s.tracker === tracker && !s.span.done);
    if (ref) tracker.extend(ref.span, offset);
    else spans.push({ tracker, span: tracker.open(offset) });
  }

  // The last partition's tracker: records come in runs of one partition.
  let lastTracked: { topic: string; partition: number; tracker: PartitionTracker } | undefined;

  function trackerFor(tp: TopicPartition): PartitionTracker {
    const last = lastTracked;
    if (last && last.partition === tp.partition && last.topic === tp.topic) return last.tracker;
    const key = tpKey(tp);
    let tracker = trackers.get(key);
    if (!tracker) {
      tracker = createPartitionTracker();
      trackers.set(key, tracker);
    }
    lastTracked = { topic: tp.topic, partition: tp.partition, tracker };
    return tracker;
  }

  // ---- replies -----------------------------------------------------------------------
  /** Produces records until Kafka acknowledges them; false if west stopped first. */
  const produceReliably = async (topic: string, records: ContractRecord[]): Promise<boolean> => {
    let backoffMs = 100;
    for (;;) {
      if (crashed) return false;
      try {
        await producer.send(topic, records);
        return true;
      } catch (err) {
        if (closing) return false;
        logger.warn("reply produce failed, retrying", { topic, error: err });
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
  };

  /** Keeps a reply record for replays, unless the reply outgrew what the store may hold. */
  const keepReply = (call: RunningCall, record: ContractRecord) => {
    call.replyCount++;
    call.replyBytes += recordBytes(record);
    if (call.replyBytes > storeMaxBytes) call.reply = undefined;
    else call.reply?.push(record);
  };

  const emitReply = (call: RunningCall, bytes: Uint8Array, header: Headers | undefined) => {
    if (call.abandoned) return;
    const record: ContractRecord = {
      key: call.id,
      value: bytes,
      headers: replyHeaders(names, call.id, header ? headerEntries(header) : []),
    };
    keepReply(call, record);
    if (call.singleReply && call.heldReply === undefined) {
      call.heldReply = record;
      return;
    }
    // More than one message after all: the held one goes first.
    const records = call.heldReply ? [call.heldReply, record] : [record];
    call.heldReply = undefined;
    // Batches go out in order, so awaiting the end record later covers this one too.
    producer.send(call.replyTo, records).catch(() => {
      call.sendFailed = true;
    });
  };

  /** Writes a kept reply again; false if west stopped first (or nothing was kept). */
  const replay = async (replyTo: string, reply: ContractRecord[] | undefined, id: string) => {
    metrics?.replayed();
    if (!reply) {
      logger.warn("reply too large to write again", { correlationId: id });
      return true;
    }
    return produceReliably(replyTo, reply);
  };

  const finish = async (call: RunningCall, result: UpstreamResult) => {
    const code = call.failure?.code ?? result.code;
    const message = call.failure?.message ?? result.message;
    const metadata = [
      ...(result.header ? headerEntries(result.header) : []),
      ...headerEntries(result.trailer),
    ];
    const end: ContractRecord = {
      key: call.id,
      value: null,
      headers: replyEndHeaders(names, call.id, code, message, metadata),
    };
    keepReply(call, end);
    const records = call.heldReply ? [call.heldReply, end] : [end];
    call.heldReply = undefined;
    const sentAt = performance.now();
    try {
      await producer.send(call.replyTo, records);
      metrics?.produced((performance.now() - sentAt) / 1000);
    } catch {
      call.sendFailed = true;
    }
    if (call.sendFailed) {
      // Part of the reply may be missing: write it whole again rather than leave a gap.
      const whole = call.reply ?? [end];
      if (!(await produceReliably(call.replyTo, whole))) return abandon(call);
    }
    for (let i = 0; i < call.replays; i++) {
      if (!(await replay(call.replyTo, call.reply, call.id))) return abandon(call);
    }
    observeEnd(call, code, message, result);
    const entry: FinishedCall = {
      id: call.id,
      replyTo: call.replyTo,
      reply: call.reply,
      position: call.position,
      finishedAt: Date.now(),
      requestEnded: call.requestEnded,
      tail: [],
      duplicateOpen: call.duplicateOpen,
      duplicate: [],
    };
    calls.delete(call.id);
    if (call.requestEnded) completeSpans(call.spans);
    else {
      entry.tail = call.spans;
      openTails.add(entry);
    }
    store.put(call.id, entry, call.reply ? call.replyBytes : 0);
  };

  const abandon = (call: RunningCall) => {
    calls.delete(call.id);
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
    const fields = {
      correlationId: call.id,
      service: call.parsed.service,
      method: call.parsed.method,
      status: code,
      ...(message ? { message } : {}),
      durationMs: Math.round(seconds * 1e6) / 1e3,
      attempts: result.attempts,
      replyRecords: call.replyCount,
    };
    if (code === Code.Unavailable && result.attempts > 0 && !call.answered) {
      logger.error("upstream unreachable", { ...fields, upstream: call.route.with.authority });
    } else if (logger.enabled(callLogLevel)) {
      logger[callLogLevel]("west call", fields);
    }
  };

  // ---- calls -------------------------------------------------------------------------
  const wake = (call: RunningCall) => {
    for (const w of call.waiters) w();
    call.waiters.clear();
  };

  /** The request so far, chunk by chunk: the end rides with the last messages. */
  async function* requestStream(call: RunningCall): AsyncIterable<RequestChunk> {
    let next = 0;
    for (;;) {
      const ended = call.requestEnded || call.abort.aborted;
      if (ended || (next < call.messages.length && !call.singleRequest)) {
        const messages = call.messages.slice(next) as Uint8Array[];
        // Once the upstream answered there is no retry left to resend for.
        if (call.answered) call.messages.fill(undefined, next);
        next = call.messages.length;
        yield { messages, ended };
        if (ended) return;
        continue;
      }
      await new Promise<void>((resolve) => call.waiters.add(resolve));
    }
  }

  const addMessage = (call: RunningCall, value: Uint8Array) => {
    try {
      call.messages.push(checkMessageBytes(value));
    } catch {
      call.failure ??= { code: Code.Internal, message: "request message is not valid protobuf" };
      call.abort.abort();
    }
    wake(call);
  };

  const run = async (call: RunningCall, deadlineMs: number) => {
    const parsed = call.parsed;
    call.stats?.started();
    const result = await callUpstream({
      transport: pool.transportFor(call.route.with),
      service: parsed.service as string,
      method: parsed.method as string,
      // Traced: the upstream sees this call's span as its parent.
      metadata: call.span
        ? withTraceparent(parsed.metadata, call.span.traceparent)
        : parsed.metadata,
      deadlineMs,
      signal: call.abort,
      requests: () => requestStream(call),
      onAnswered: () => {
        call.answered = true;
      },
      retry: options.retry,
      onMessage: (bytes, header) => emitReply(call, bytes, header),
    });
    if (call.abandoned) return abandon(call);
    await finish(call, result);
  };

  /** Creates the call for a new correlation id; `immediate` answers without upstream. */
  const startCall = (
    record: ConsumedRecord,
    tracker: PartitionTracker,
    parsed: ParsedRequest,
    route: KafkaGrpcRoute,
    immediate?: { code: Code; message: string },
    spans: SpanRef[] = [],
  ): RunningCall => {
    const kind = methodKind(parsed);
    const call: RunningCall = {
      id: parsed.correlationId as string,
      replyTo: parsed.replyTo as string,
      route,
      parsed,
      position: positionOf(record),
      spans,
      messages: [],
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
      stats: undefined,
      span: undefined,
    };
    if (!immediate) {
      call.stats = metrics?.call(parsed.service as string, parsed.method as string);
      call.span = tracer?.startClient({
        parent: traceparentOf(parsed.metadata),
        service: parsed.service as string,
        method: parsed.method as string,
        topic: record.topic,
        peer: route.with.authority,
      });
      call.span?.correlate(call.id);
    }
    calls.set(call.id, call);
    attach(call.spans, tracker, record.offset);
    if (record.value === null) call.requestEnded = true;
    else if (!immediate) addMessage(call, record.value);
    if (immediate) {
      call.done = finish(call, {
        code: immediate.code,
        message: immediate.message,
        trailer: new Headers(),
        attempts: 0,
      });
    } else {
      const deadlineMs = parsed.deadlineMs ?? Date.now() + options.defaultTimeoutMs;
      active++;
      call.done = run(call, deadlineMs).finally(releaseSlot);
    }
    call.done.catch((err) =>
      logger.error("call failed unexpectedly", { correlationId: call.id, error: err }),
    );
    return call;
  };

  /** A further record of a running call. */
  const onRunningRecord = (
    call: RunningCall,
    tracker: PartitionTracker,
    record: ConsumedRecord,
  ) => {
    const redelivered = isRedelivery(call.position, record);
    attach(call.spans, tracker, record.offset);
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
      }
    } else if (call.duplicateOpen) {
      call.duplicateOpen = false;
      if (call.duplicateNeedsReplay) call.replays++;
    } else {
      logger.debug("request cancelled by its caller", { correlationId: call.id });
      call.failure ??= { code: Code.Canceled, message: "cancelled by the caller" };
      call.abort.abort();
      wake(call);
    }
  };

  /** A record whose id has a finished call; false when it should start a new call. */
  const onFinishedRecord = (
    entry: FinishedCall,
    tracker: PartitionTracker,
    record: ConsumedRecord,
  ): boolean => {
    if (isRedelivery(entry.position, record)) {
      tracker.open(record.offset).done = true;
      scheduleCommit();
      return true;
    }
    if (!entry.requestEnded) {
      // The rest of the call's own request: the upstream answered before it ended.
      entry.position = positionOf(record);
      attach(entry.tail, tracker, record.offset);
      if (record.value === null) {
        entry.requestEnded = true;
        openTails.delete(entry);
        completeSpans(entry.tail);
      }
      return true;
    }
    if (!entry.duplicateOpen && (!entry.reply || Date.now() >= entry.finishedAt + windowMs)) {
      store.delete(entry.id);
      return false;
    }
    entry.position = positionOf(record);
    attach(entry.duplicate, tracker, record.offset);
    if (record.value !== null) {
      entry.duplicateOpen = true;
      return true;
    }
    entry.duplicateOpen = false;
    const spans = entry.duplicate;
    entry.duplicate = [];
    logger.debug("duplicate request answered from the idempotency store", {
      correlationId: entry.id,
    });
    void replay(entry.replyTo, entry.reply, entry.id).then((ok) => {
      if (ok) completeSpans(spans);
    });
    return true;
  };

  /** A record done with at once (skipped): it only moves the commit point. */
  const skip = (tracker: PartitionTracker, record: ConsumedRecord, reason: string) => {
    tracker.open(record.offset).done = true;
    scheduleCommit();
    logger.debug("request record skipped", {
      reason,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
    });
  };

  /** A consumed record; false when it must be read again later (no room to hold it). */
  const handleRecord = (record: ConsumedRecord): boolean => {
    if (closing) return true;
    const tracker = trackerFor(record);
    if (tracker.seen(record.offset)) return true;
    const parsed = parseRequestHeaders(record.headers, names);
    const id = parsed.correlationId;
    if (id === undefined) {
      skip(tracker, record, "no correlation id");
    } else if (held.has(id) || (held.size > 0 && !calls.has(id) && !store.get(id))) {
      // Behind the calls already waiting for a slot: their order is kept.
      if (!hold(record, tracker, parsed)) return false;
    } else if (!dispatch(record, tracker, parsed)) {
      return false;
    }
    metrics?.consumed(Math.max(0, Date.now() - record.timestampMs) / 1000);
    return true;
  };

  /**
   * Hands a record to its call: a running one, a finished one (duplicates), or a new one,
   * which starts if a slot is free and is held otherwise. `spans` are a held call's, whose
   * records the tracker has seen already. False when the record could not be held.
   */
  const dispatch = (
    record: ConsumedRecord,
    tracker: PartitionTracker,
    parsed: ParsedRequest,
    spans?: SpanRef[],
  ): boolean => {
    const id = parsed.correlationId as string;
    const running = calls.get(id);
    if (running) {
      onRunningRecord(running, tracker, record);
      return true;
    }
    const finished = store.get(id);
    if (finished && onFinishedRecord(finished, tracker, record)) return true;

    const routeInput = {
      topic: record.topic,
      key: record.key,
      headers: parsed.headers,
      replyTo: parsed.replyTo,
      service: parsed.service,
      method: parsed.method,
    };
    if (parsed.service === undefined || parsed.method === undefined) {
      const route = matchWestRoute(routes, routeInput, true);
      if (!route) skipHeld(tracker, record, spans);
      else {
        const immediate = { code: Code.Internal, message: noServiceMessage };
        startCall(record, tracker, parsed, route, immediate, spans);
      }
      return true;
    }
    const route = matchWestRoute(routes, routeInput);
    if (!route) {
      skipHeld(tracker, record, spans);
      return true;
    }
    if (parsed.deadlineMs !== undefined && parsed.deadlineMs <= Date.now()) {
      const immediate = {
        code: Code.DeadlineExceeded,
        message: "deadline expired before the upstream call",
      };
      startCall(record, tracker, parsed, route, immediate, spans);
      return true;
    }
    if (active >= options.maxConcurrentCalls) return hold(record, tracker, parsed);
    startCall(record, tracker, parsed, route, undefined, spans);
    return true;
  };

  /** Skips a record; one already held only has its spans marked done. */
  const skipHeld = (tracker: PartitionTracker, record: ConsumedRecord, spans?: SpanRef[]) => {
    if (spans) completeSpans(spans);
    else skip(tracker, record, "no route");
  };

  // ---- group membership --------------------------------------------------------------
  const waitForCalls = async (ms: number) => {
    if (calls.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...calls.values()].map((c) => c.done)),
      new Promise((r) => {
        timer = setTimeout(r, ms);
      }),
    ]);
    clearTimeout(timer);
  };

  consumer = await startGroupConsumer(kafka, {
    groupId,
    topics,
    logger,
    sessionTimeoutMs: tuning.sessionTimeoutMs,
    // Unset: the kafka client binding's group timings, else the defaults.
    heartbeatIntervalMs: tuning.heartbeatIntervalMs,
    rebalanceTimeoutMs: tuning.rebalanceTimeoutMs,
    ...(opts.readiness ? { readiness: opts.readiness } : {}),
    onRecord(record) {
      try {
        return handleRecord(record);
      } catch (err) {
        if (isRebalancing(err) || (err instanceof Error && err.name.startsWith("KafkaJS"))) {
          throw err;
        }
        logger.error("request record failed", {
          topic: record.topic,
          offset: record.offset,
          error: err,
        });
        return true;
      }
    },
    async onRebalancing(canWait) {
      if (canWait) await waitForCalls(tuning.rebalanceGraceMs ?? 2_000);
      await commitNow();
    },
    onAssignment(assignment) {
      lastTracked = undefined;
      const keep = new Set(assignment.map(tpKey));
      for (const key of [...trackers.keys()]) {
        // A revoked partition's calls still answer, but its offsets are the new owner's.
        if (!keep.has(key)) {
          trackers.delete(key);
          committed.delete(key);
        }
      }
      // Held calls of revoked partitions never start here (the new owner reads them).
      for (const [id, entry] of held) {
        if (trackers.get(entry.key) === entry.tracker) continue;
        held.delete(id);
        heldRecords -= entry.records.length;
        heldBytes -= entry.bytes;
      }
      assigned = assignment;
      logger.info("west assignment", { groupId, partitions: assignment.map(tpKey) });
      scheduleCommit();
    },
  });

  const ticker = setInterval(() => {
    const now = Date.now();
    for (const entry of openTails) {
      if (now - entry.finishedAt < tailGraceMs) continue;
      entry.requestEnded = true;
      openTails.delete(entry);
      completeSpans(entry.tail);
    }
    store.sweep();
    void commitNow();
  }, tuning.commitIntervalMs ?? 1_000);
  ticker.unref?.();

  // One lookup at a time: scrapes during a Kafka outage must not pile up requests.
  let lagInFlight: Promise<LagEntry[]> | undefined;
  const lag = (): Promise<LagEntry[]> => {
    if (closing || !consumer) return Promise.resolve([]);
    lagInFlight ??= consumer.lag().finally(() => {
      lagInFlight = undefined;
    });
    return lagInFlight;
  };
  const unwatchLag = metrics ? metrics.watchLag(groupId, lag) : () => {};

  const stopAll = async () => {
    clearInterval(ticker);
    unwatchLag();
    await consumer?.close().catch((err) => logger.warn("consumer close failed", { error: err }));
    await producer.close().catch((err) => logger.warn("producer close failed", { error: err }));
    pool.close();
  };

  return {
    groupId,
    topics,
    update(next) {
      const nextTopics = westTopics(next);
      if (nextTopics.length !== topics.length || nextTopics.some((t) => !topics.includes(t))) {
        throw new Error(
          `west ${config.binding}: consuming ${nextTopics.join(", ")} instead of ${topics.join(", ")} takes a restart`,
        );
      }
      routes = next;
      logger.info("west routes updated", { routes: next.length });
    },
    lag,
    async close(graceMs = tuning.closeGraceMs ?? 5_000) {
      if (closing) return;
      closing = true;
      consumer?.pause();
      await waitForCalls(graceMs);
      for (const call of calls.values()) {
        call.abandoned = true;
        call.abort.abort();
        wake(call);
      }
      await waitForCalls(1_000);
      await commitNow();
      await stopAll();
    },
    async crash() {
      closing = true;
      crashed = true;
      consumer?.pause();
      for (const call of calls.values()) {
        call.abandoned = true;
        call.abort.abort();
        wake(call);
      }
      await stopAll();
    },
  };
}

function tpKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}

function positionOf(record: ConsumedRecord): Position {
  return { topic: record.topic, partition: record.partition, offset: record.offset };
}

function isRedelivery(last: Position, record: ConsumedRecord): boolean {
  return (
    last.topic === record.topic &&
    last.partition === record.partition &&
    record.offset <= last.offset
  );
}

function headerEntries(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => {
    out.push([name, value]);
  });
  return out;
}

/** Approximate memory of a consumed record, for the held-records bound. */
function consumedBytes(record: ConsumedRecord): number {
  let n = 128 + (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) n += 32 + name.length + value.length;
  return n;
}

function recordBytes(record: ContractRecord): number {
  let n = (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) n += name.length + value.length;
  return n;
}
