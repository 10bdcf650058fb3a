/**
 * West, the remote server (docs/contract.md: Reply records, West, Where we differ from Zilla): a consumer-group member that turns request
 * records into upstream gRPC calls and the calls' responses into reply records. This file
 * puts the parts together and owns start and stop:
 *
 * - record-router.ts: where each record goes (its call, an ended call, a new call, held);
 * - call-runner.ts: a call from its first record to its reply's end record;
 * - reply-writer.ts: reply records, replays and west's own answers, until acknowledged;
 * - offset-commits.ts, commit-tracker.ts: commits only behind acknowledged replies;
 * - held-calls.ts: new calls' records waiting for a slot;
 * - ended-calls.ts: what ended calls left, for late records, re-deliveries, duplicates;
 * - call-journal.ts, changelog-*.ts: the changelog that makes that survive crashes and
 *   partition moves (docs/idempotency.md); west-assignment.ts: restore on assignment.
 *
 * Per correlation id there is one call: records with that id are its request messages in
 * record order, the first tombstone is the request's end (half-close). A tombstone after
 * the end is the caller's cancel or deadline (north writes one more), and aborts the call.
 */
import type { KafkaGrpcRoute, WestConfig } from "../config/types.ts";
import { KafkaCluster } from "../kafka/client/kafka-cluster.ts";
import {
  type GroupConsumer,
  isRebalancing,
  type ReadinessWatch,
  startGroupConsumer,
} from "../kafka/group-consumer.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import { startReplyProducer } from "../kafka/reply-producer.ts";
import type { LagEntry, WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger, LogLevel } from "../ops/logger.ts";
import type { ReadinessPart } from "../ops/readiness.ts";
import type { CallTracer } from "../ops/tracing.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import { type CallJournal, createKafkaJournal, memoryJournal } from "./call-journal.ts";
import { createCallRunner } from "./call-runner.ts";
import {
  type ChangelogTopic,
  defaultChangelogTopic,
  ensureChangelogTopics,
} from "./changelog-topic.ts";
import { type ChangelogWriter, startChangelogWriter } from "./changelog-writer.ts";
import { createEndedCalls } from "./ended-calls.ts";
import { createHeldCalls } from "./held-calls.ts";
import { createOffsetCommits } from "./offset-commits.ts";
import { createRecordRouter, type RecordRouter } from "./record-router.ts";
import { createReplyWriter } from "./reply-writer.ts";
import { createUpstreamHealth } from "./upstream-health.ts";
import { createUpstreamPool } from "./upstream-pool.ts";
import { createAssignmentHandler } from "./west-assignment.ts";
import { westTopics } from "./west-routes.ts";

export interface West {
  /** The consumer group id, `zilla:<namespace>-<binding>`. */
  readonly groupId: string;
  /** The request topics it consumes (fixed for its lifetime). */
  readonly topics: readonly string[];
  /** Changelog topic by request topic (empty in memory mode). */
  readonly changelogs: ReadonlyMap<string, string>;
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
   * Stops as a killed process would: no more replies or changelog entries, no commit. The
   * group still sees a clean leave, so tests need not wait for a session timeout. For crash
   * scenarios only.
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
  /** Bounds of the ended calls kept in memory (defaults 100 000 calls, 64 MiB). */
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
  /** How long start-up waits for the first assignment and its restore (default 120 s). */
  joinTimeoutMs?: number;
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
  /** Told while a rebalance's new partitions are restored from the changelog (not ready). */
  restoreReadiness?: Pick<ReadinessPart, "ready" | "unready">;
  /** Where the group member reports why it cannot serve (rebalancing too long, a partition without a position). */
  readiness?: ReadinessWatch;
}

/** Starts west and resolves once its consumer group has given it an assignment. */
export async function startWest(opts: StartWestOptions): Promise<West> {
  const { config, kafka } = opts;
  const options = config.options;
  const tuning = opts.tuning ?? {};
  const logger = opts.logger.child({ binding: config.binding });
  const groupId = `zilla:${opts.namespace}-${config.binding}`;
  const tailGraceMs = tuning.requestTailGraceMs ?? 30_000;
  const topics = westTopics(config.routes);
  let closing = false;
  let crashed = false;

  const durable = options.idempotencyStore === "kafka";
  const changelogs = durable
    ? await prepareChangelogs(opts, topics, logger)
    : new Map<string, ChangelogTopic>();
  const pool = createUpstreamPool(createUpstreamHealth({ logger, metrics: opts.metrics }));
  const producer = await startReplyProducer(kafka, { acks: options.acks, logger });
  let writer: ChangelogWriter | undefined;
  let journal: CallJournal = memoryJournal;
  if (durable) {
    writer = await startChangelogWriter(kafka, { acks: options.acks });
    journal = createKafkaJournal({
      writer,
      changelogOf: (topic) => (changelogs.get(topic) as ChangelogTopic).topic,
      crashed: () => crashed,
      closing: () => closing,
      logger,
    });
  }

  let consumer: GroupConsumer | undefined;
  const commits = createOffsetCommits({
    commit: (offsets) =>
      consumer ? consumer.commit(offsets) : Promise.reject(new Error("not a group member yet")),
    commitDelayMs: Math.min(100, tuning.commitIntervalMs ?? 1_000),
    logger,
    onCommitted: (tp, offset) => ended.releaseCommitted(tp, offset),
  });
  const ended = createEndedCalls({
    windowMs: options.idempotencyWindowMs,
    tailGraceMs,
    maxEntries: tuning.storeMaxEntries ?? 100_000,
    maxBytes: tuning.storeMaxBytes ?? 64 * 1024 * 1024,
    complete: commits.complete,
  });
  const replies = createReplyWriter({
    producer,
    names: options.correlation.headers,
    keepMaxBytes: options.replayMaxBytes,
    crashed: () => crashed,
    closing: () => closing,
    logger,
    metrics: opts.metrics,
  });
  const held = createHeldCalls({
    maxRecords: tuning.heldRecordsMax ?? 4096,
    maxBytes: tuning.heldBytesMax ?? 16 * 1024 * 1024,
  });
  let router: RecordRouter | undefined;
  const runner = createCallRunner({
    options,
    registry: opts.registry,
    pool,
    replies,
    journal,
    commits,
    ended,
    logger,
    callLogLevel: opts.callLogLevel ?? "debug",
    metrics: opts.metrics,
    tracer: opts.tracer,
    onSlotFree: () => {
      if (held.size > 0) router?.startHeld();
    },
  });
  router = createRecordRouter({
    options,
    routes: config.routes,
    runner,
    ended,
    held,
    commits,
    replies,
    logger,
    metrics: opts.metrics,
    closing: () => closing,
    resumeRefused: () => consumer?.resumeRefused(),
  });
  const recordRouter = router;

  try {
    consumer = await startGroupConsumer(kafka, {
      groupId,
      topics,
      logger,
      sessionTimeoutMs: tuning.sessionTimeoutMs,
      // Unset: the kafka client binding's group timings, else the defaults.
      heartbeatIntervalMs: tuning.heartbeatIntervalMs,
      rebalanceTimeoutMs: tuning.rebalanceTimeoutMs,
      ...(opts.readiness ? { readiness: opts.readiness } : {}),
      joinTimeoutMs: tuning.joinTimeoutMs ?? 120_000,
      // Every request record names its service, method and reply topic: a few values, read
      // as the same strings each time.
      repeatedValues: new Set([
        options.correlation.headers.service,
        options.correlation.headers.method,
        options.correlation.headers.replyTo,
      ]),
      onRecord(record) {
        try {
          return recordRouter.handle(record);
        } catch (err) {
          if (isRebalancing(err)) throw err;
          logger.error("request record failed", {
            topic: record.topic,
            offset: record.offset,
            error: err,
          });
          return true;
        }
      },
      async onRebalancing(canWait) {
        if (canWait) await runner.waitForCalls(tuning.rebalanceGraceMs ?? 2_000);
        await commits.commitNow();
      },
      onAssignment: createAssignmentHandler({
        groupId,
        commits,
        held,
        runner,
        ended,
        changelogs: durable ? changelogs : undefined,
        kafka,
        windowMs: options.idempotencyWindowMs,
        tailGraceMs,
        logger,
        restoreReadiness: opts.restoreReadiness,
      }),
    });
  } catch (error) {
    // No assignment in time (or Kafka refused): leave nothing open behind the failure.
    closing = true;
    await producer.close().catch(() => {});
    await writer?.close().catch(() => {});
    pool.close();
    throw error;
  }

  const ticker = setInterval(() => {
    ended.sweep();
    void commits.commitNow();
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
  const unwatchLag = opts.metrics ? opts.metrics.watchLag(groupId, lag) : () => {};

  const stopAll = async () => {
    clearInterval(ticker);
    unwatchLag();
    await consumer?.close().catch((err) => logger.warn("consumer close failed", { error: err }));
    await producer.close().catch((err) => logger.warn("producer close failed", { error: err }));
    await writer?.close().catch((err) => logger.warn("changelog close failed", { error: err }));
    pool.close();
  };

  return {
    groupId,
    topics,
    changelogs: new Map([...changelogs].map(([topic, c]) => [topic, c.topic])),
    update(next) {
      const nextTopics = westTopics(next);
      if (nextTopics.length !== topics.length || nextTopics.some((t) => !topics.includes(t))) {
        throw new Error(
          `west ${config.binding}: consuming ${nextTopics.join(", ")} instead of ${topics.join(", ")} takes a restart`,
        );
      }
      recordRouter.setRoutes(next);
      logger.info("west routes updated", { routes: next.length });
    },
    lag,
    async close(graceMs = tuning.closeGraceMs ?? 5_000) {
      if (closing) return;
      closing = true;
      consumer?.pause();
      await runner.waitForCalls(graceMs);
      runner.abandon(() => true);
      await runner.waitForCalls(1_000);
      await commits.commitNow();
      await stopAll();
    },
    async crash() {
      closing = true;
      crashed = true;
      commits.stop();
      consumer?.pause();
      runner.abandon(() => true);
      await stopAll();
    },
  };
}

/** The changelog of every request topic, made sure to exist (start-up fails if it cannot). */
async function prepareChangelogs(
  opts: StartWestOptions,
  topics: readonly string[],
  logger: Logger,
): Promise<Map<string, ChangelogTopic>> {
  const options = opts.config.options;
  const names = new Map(
    topics.map((topic) => [
      topic,
      options.changelogTopics[topic] ??
        defaultChangelogTopic(opts.namespace, opts.config.binding, topic),
    ]),
  );
  const cluster = new KafkaCluster(opts.kafka.wire);
  try {
    const ensured = await ensureChangelogTopics({
      cluster,
      topics: names,
      windowMs: options.idempotencyWindowMs,
      replayMaxBytes: options.replayMaxBytes,
      binding: opts.config.binding,
      logger,
    });
    return new Map(ensured.map((c) => [c.requestTopic, c]));
  } finally {
    cluster.close();
  }
}
