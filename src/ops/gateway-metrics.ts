/**
 * The gateway's metrics: what north and west record, named like Zilla's Prometheus exporter
 * (`grpc_duration_seconds`, `grpc_active_requests`, ...) with `namespace` and `binding`
 * labels, plus the Kafka side (produce and consume latency, pending and dropped replies,
 * consumer lag, replays, retries, undecodable batches and held partitions). Each method's label sets are resolved on its first call
 * and kept, so a call records numbers only.
 */
import type { UndecodableMetrics } from "../kafka/undecodable-batches.ts";
import {
  type CounterChild,
  countBuckets,
  durationBuckets,
  type Family,
  type GaugeChild,
  type HistogramChild,
  type MetricsRegistry,
  sizeBuckets,
} from "./metrics.ts";

/** What one north call records (one instance per served method). */
export interface NorthCallStats {
  started(): void;
  finished(
    code: number,
    seconds: number,
    requestBytes: number,
    responseBytes: number,
    requests: number,
    responses: number,
  ): void;
}

/** What one west upstream call records (one instance per method). */
export interface UpstreamCallStats {
  started(): void;
  finished(code: number, seconds: number, retries: number): void;
}

export interface NorthMetrics {
  /** The stats of one method; the same object for every call of it. */
  call(service: string, method: string): NorthCallStats;
  /** A request record was acknowledged `seconds` after it was queued. */
  produced(seconds: number): void;
  /** Reports the reply reader's waiting calls, records read and dropped, partitions, at each scrape. */
  watchReplies(source: ReplySource): () => void;
}

/** What the reply reader reports. */
export interface ReplySource {
  readonly waiting: number;
  readonly dropped: number;
  readonly recordsRead?: number;
  partitions?(): { topic: string; read: number[]; owned: number[] }[];
}

export interface WestMetrics {
  call(service: string, method: string): UpstreamCallStats;
  /** A reply's records were acknowledged `seconds` after they were sent. */
  produced(seconds: number): void;
  /** A request record was read `seconds` after its timestamp. */
  consumed(seconds: number): void;
  /** A stored reply was written again for a duplicate request. */
  replayed(): void;
  /** Reports the group's lag per partition at each scrape. */
  watchLag(groupId: string, lag: () => Promise<LagEntry[]>): () => void;
  /** The reachability series of one upstream (`host:port`). */
  upstream(authority: string): UpstreamReachability;
}

/** What west records about reaching one upstream. */
export interface UpstreamReachability {
  /** An attempt reached the upstream: up = 1. */
  reached(): void;
  /** An attempt could not reach it: up = 0, one more failure counted. */
  unreachable(): void;
}

export interface LagEntry {
  topic: string;
  partition: number;
  /** High watermark minus the group's committed offset. */
  lag: number;
}

export interface GatewayMetrics {
  readonly registry: MetricsRegistry;
  north(binding: string): NorthMetrics;
  west(binding: string): WestMetrics;
  /** Undecodable batches met by any reader, held partitions, skipped offsets. */
  readonly undecodable: UndecodableMetrics;
  /** A changed config file was handled: counted by what the log line about it says. */
  reloaded(result: ReloadOutcome): void;
}

/**
 * What became of a changed config file: every change applied, some applied and some needing
 * a restart, none applied because all need a restart, refused (invalid), or failed (error).
 */
export type ReloadOutcome = "applied" | "partial" | "restart_needed" | "refused" | "failed";

/** Every reload outcome, so each one's count is exposed (as 0) from the start. */
export const reloadOutcomes: readonly ReloadOutcome[] = [
  "applied",
  "partial",
  "restart_needed",
  "refused",
  "failed",
];

/** gRPC status names, by code (the label values of `status`). */
export const grpcStatusNames: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

// West sees method names from records, which any producer writes: bound the label sets.
const maxMethodsPerBinding = 256;
const otherLabel = "other";

/** Registers the gateway's metric families on `registry`. */
export function createGatewayMetrics(registry: MetricsRegistry, namespace: string): GatewayMetrics {
  const base = ["namespace", "binding"];
  const perMethod = [...base, "service", "method"];
  const perStatus = [...perMethod, "status"];

  // One line per family: name, help, labels (and buckets); registration order is exposition order.
  const counter = (name: string, help: string, labelNames: readonly string[]) =>
    registry.counter({ name, help, labelNames });
  const gauge = (name: string, help: string, labelNames: readonly string[]) =>
    registry.gauge({ name, help, labelNames });
  const histogram = (
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ) => registry.histogram({ name, help, labelNames, buckets });

  const started = counter(
    "grpc_requests_started_total",
    "gRPC calls north accepted, by method.",
    perMethod,
  );
  const handled = counter(
    "grpc_requests_handled_total",
    "gRPC calls north finished, by method and status.",
    perStatus,
  );
  const active = gauge("grpc_active_requests", "gRPC calls north is serving now.", perMethod);
  const duration = histogram(
    "grpc_duration_seconds",
    "Time from a call's start to its status, by method and status.",
    perStatus,
    durationBuckets,
  );
  const requestSize = histogram(
    "grpc_request_size_bytes",
    "Request message bytes per call.",
    perMethod,
    sizeBuckets,
  );
  const responseSize = histogram(
    "grpc_response_size_bytes",
    "Response message bytes per call.",
    perMethod,
    sizeBuckets,
  );
  const requestsPerRpc = histogram(
    "grpc_requests_per_rpc",
    "Request messages per call.",
    perMethod,
    countBuckets,
  );
  const responsesPerRpc = histogram(
    "grpc_responses_per_rpc",
    "Response messages per call.",
    perMethod,
    countBuckets,
  );
  const pendingReplies = gauge(
    "gateway_pending_replies",
    "North calls waiting for reply records.",
    base,
  );
  const droppedReplies = counter(
    "gateway_reply_records_dropped_total",
    "Reply records read that no call was waiting for.",
    base,
  );
  const readReplies = counter(
    "gateway_reply_records_read_total",
    "Reply records north fetched, whether a call waited for them or not.",
    base,
  );
  const replyPartitions = gauge(
    "gateway_reply_partitions",
    "Reply topic partitions north reads (state read) and owns (state owned).",
    [...base, "topic", "state"],
  );
  const produceLatency = histogram(
    "kafka_produce_duration_seconds",
    "Time from queueing a record to Kafka's acknowledgement.",
    base,
    durationBuckets,
  );
  const consumeLatency = histogram(
    "kafka_consume_latency_seconds",
    "Age of a request record (its timestamp to now) when west reads it.",
    base,
    durationBuckets,
  );
  const upstreamStarted = counter(
    "grpc_upstream_requests_started_total",
    "Upstream gRPC calls west started, by method.",
    perMethod,
  );
  const upstreamHandled = counter(
    "grpc_upstream_requests_handled_total",
    "Upstream gRPC calls west finished, by method and status.",
    perStatus,
  );
  const upstreamDuration = histogram(
    "grpc_upstream_duration_seconds",
    "Time of an upstream call, retries included, by method and status.",
    perStatus,
    durationBuckets,
  );
  const upstreamRetries = counter(
    "grpc_upstream_retries_total",
    "Upstream connection attempts repeated after the upstream could not be reached.",
    perMethod,
  );
  const upstreamUp = gauge(
    "gateway_upstream_up",
    "Whether west's last attempt to reach an upstream did (1) or could not (0), by upstream host:port.",
    [...base, "upstream"],
  );
  const upstreamFailures = counter(
    "gateway_upstream_connect_failures_total",
    "Attempts west made that could not reach an upstream (refused, unresolvable, unreachable, GOAWAY), by upstream host:port.",
    [...base, "upstream"],
  );
  const replays = counter(
    "gateway_idempotent_replays_total",
    "Stored replies written again for duplicate requests (same idempotency key).",
    base,
  );
  const lagGauge = gauge(
    "kafka_consumer_lag",
    "Records in a partition past the consumer group's committed offset.",
    [...base, "group", "topic", "partition"],
  );
  const undecodableBatches = counter(
    "kafka_undecodable_batches_total",
    "Record batches a reader could not decode, by topic, partition and action (held or skipped).",
    ["namespace", "topic", "partition", "action"],
  );
  const skippedOffsets = counter(
    "kafka_skipped_offsets_total",
    "Offsets in undecodable batches skipped under the skip policy (their records are lost).",
    ["namespace", "topic", "partition"],
  );
  const heldPartitions = gauge(
    "kafka_held_partitions",
    "1 while a reader holds the partition at an undecodable batch (policy fail), else 0.",
    ["namespace", "reader", "topic", "partition"],
  );
  const reloads = counter(
    "gateway_config_reloads_total",
    "Config file changes handled, by result (applied, partial, restart_needed, refused, failed).",
    ["namespace", "result"],
  );
  for (const outcome of reloadOutcomes) reloads.labels(namespace, outcome);

  return {
    registry,
    north(binding) {
      const calls = createMethodTable((service, method) =>
        northCallStats(
          [namespace, binding, service, method],
          started,
          handled,
          active,
          duration,
          requestSize,
          responseSize,
          requestsPerRpc,
          responsesPerRpc,
        ),
      );
      const produce = produceLatency.labels(namespace, binding);
      return {
        call: calls,
        produced: (seconds) => produce.observe(seconds),
        watchReplies(source) {
          const pending = pendingReplies.labels(namespace, binding);
          const dropped = droppedReplies.labels(namespace, binding);
          const read = readReplies.labels(namespace, binding);
          let reported = 0;
          let reportedRead = 0;
          return registry.addCollector(() => {
            pending.set(source.waiting);
            // A counter only goes up: add what the reader counted since the last scrape.
            dropped.inc(source.dropped - reported);
            reported = source.dropped;
            const recordsRead = source.recordsRead ?? 0;
            read.inc(recordsRead - reportedRead);
            reportedRead = recordsRead;
            for (const p of source.partitions?.() ?? []) {
              replyPartitions.labels(namespace, binding, p.topic, "read").set(p.read.length);
              replyPartitions.labels(namespace, binding, p.topic, "owned").set(p.owned.length);
            }
          });
        },
      };
    },
    west(binding) {
      const calls = createMethodTable((service, method) =>
        upstreamCallStats(
          [namespace, binding, service, method],
          upstreamStarted,
          upstreamHandled,
          upstreamDuration,
          upstreamRetries,
        ),
      );
      const produce = produceLatency.labels(namespace, binding);
      const consume = consumeLatency.labels(namespace, binding);
      const replayed = replays.labels(namespace, binding);
      return {
        call: calls,
        produced: (seconds) => produce.observe(seconds),
        consumed: (seconds) => consume.observe(seconds),
        replayed: () => replayed.inc(),
        upstream(authority) {
          const up = upstreamUp.labels(namespace, binding, authority);
          const failures = upstreamFailures.labels(namespace, binding, authority);
          return {
            reached: () => up.set(1),
            unreachable() {
              up.set(0);
              failures.inc();
            },
          };
        },
        watchLag(groupId, lag) {
          return registry.addCollector(async () => {
            for (const entry of await lag()) {
              lagGauge
                .labels(namespace, binding, groupId, entry.topic, String(entry.partition))
                .set(entry.lag);
            }
          });
        },
      };
    },
    undecodable: {
      batch: (topic, partition, action) =>
        undecodableBatches.labels(namespace, topic, String(partition), action).inc(),
      skippedOffsets: (topic, partition, count) =>
        skippedOffsets.labels(namespace, topic, String(partition)).inc(count),
      holding: (reader, topic, partition, held) =>
        heldPartitions.labels(namespace, reader, topic, String(partition)).set(held ? 1 : 0),
    },
    reloaded(result) {
      reloads.labels(namespace, result).inc();
    },
  };
}

/** A (service, method) → stats table, filled on first use and bounded. */
function createMethodTable<T>(make: (service: string, method: string) => T) {
  const services = new Map<string, Map<string, T>>();
  let size = 0;
  let other: T | undefined;
  return (service: string, method: string): T => {
    let methods = services.get(service);
    const known = methods?.get(method);
    if (known !== undefined) return known;
    if (size >= maxMethodsPerBinding) {
      other ??= make(otherLabel, otherLabel);
      return other;
    }
    if (!methods) {
      methods = new Map();
      services.set(service, methods);
    }
    const stats = make(service, method);
    methods.set(method, stats);
    size++;
    return stats;
  };
}

function northCallStats(
  labels: string[],
  started: Family<CounterChild>,
  handled: Family<CounterChild>,
  active: Family<GaugeChild>,
  duration: Family<HistogramChild>,
  requestSize: Family<HistogramChild>,
  responseSize: Family<HistogramChild>,
  requestsPerRpc: Family<HistogramChild>,
  responsesPerRpc: Family<HistogramChild>,
): NorthCallStats {
  const startedChild = started.labels(...labels);
  const activeChild = active.labels(...labels);
  const requestSizeChild = requestSize.labels(...labels);
  const responseSizeChild = responseSize.labels(...labels);
  const requestsChild = requestsPerRpc.labels(...labels);
  const responsesChild = responsesPerRpc.labels(...labels);
  const byStatus = handledByStatus(labels, handled, duration);
  return {
    started() {
      startedChild.inc();
      activeChild.inc();
    },
    finished(code, seconds, requestBytes, responseBytes, requests, responses) {
      activeChild.dec();
      const s = byStatus(code);
      s.handled.inc();
      s.duration.observe(seconds);
      requestSizeChild.observe(requestBytes);
      responseSizeChild.observe(responseBytes);
      requestsChild.observe(requests);
      responsesChild.observe(responses);
    },
  };
}

function upstreamCallStats(
  labels: string[],
  started: Family<CounterChild>,
  handled: Family<CounterChild>,
  duration: Family<HistogramChild>,
  retries: Family<CounterChild>,
): UpstreamCallStats {
  const startedChild = started.labels(...labels);
  const retriesChild = retries.labels(...labels);
  const byStatus = handledByStatus(labels, handled, duration);
  return {
    started() {
      startedChild.inc();
    },
    finished(code, seconds, retryCount) {
      const s = byStatus(code);
      s.handled.inc();
      s.duration.observe(seconds);
      if (retryCount > 0) retriesChild.inc(retryCount);
    },
  };
}

/** The handled counter and duration histogram of one method, per status code. */
function handledByStatus(
  labels: string[],
  handled: Family<CounterChild>,
  duration: Family<HistogramChild>,
) {
  return statusTable((status) => ({
    handled: handled.labels(...labels, status),
    duration: duration.labels(...labels, status),
  }));
}

/** Children per gRPC status code, made on the code's first use. */
function statusTable<T>(make: (status: string) => T): (code: number) => T {
  const known: (T | undefined)[] = [];
  const others = new Map<number, T>();
  return (code) => {
    if (code >= 0 && code < grpcStatusNames.length) {
      let entry = known[code];
      if (entry === undefined) {
        entry = make(grpcStatusNames[code] as string);
        known[code] = entry;
      }
      return entry;
    }
    let entry = others.get(code);
    if (entry === undefined) {
      entry = make(String(code));
      others.set(code, entry);
    }
    return entry;
  };
}
