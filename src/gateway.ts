/**
 * Composition root: builds the Kafka client, the west remote servers and the north front
 * doors from a resolved config, and owns their start and stop order, their readiness, their
 * telemetry and what a config reload may change while they run.
 */
import type { GatewayConfig } from "./config/types.ts";
import { KafkaCluster } from "./kafka/client/kafka-cluster.ts";
import { createKafka, type Kafka } from "./kafka/kafka-client.ts";
import { type ReplyPartitions, replyGroupId } from "./kafka/reply-partitions.ts";
import { createUndecodableWatch, heldPartitionsReason } from "./kafka/undecodable-batches.ts";
import { type North, startNorth } from "./north/north-server.ts";
import type { OverallHealth } from "./north/ops-services.ts";
import { planReload } from "./ops/config-reload.ts";
import { createLogger, type Logger } from "./ops/logger.ts";
import { createReadiness, type Readiness } from "./ops/readiness.ts";
import { createTelemetry, type Telemetry } from "./ops/telemetry.ts";
import { loadServiceRegistry, type ServiceRegistry } from "./service-registry.ts";
import { startWest, type West } from "./west/remote-server.ts";

export interface Gateway {
  /** The config running now (a reload changes its routes, services and methods). */
  readonly config: GatewayConfig;
  readonly north: readonly North[];
  readonly west: readonly West[];
  readonly kafka: Kafka;
  readonly telemetry: Telemetry;
  readonly readiness: Readiness;
  /**
   * Applies a new (validated) config without dropping calls: routes, services, methods and
   * CORS swap in place for new calls. What needs a restart is left as is and listed.
   */
  reload(config: GatewayConfig): ReloadResult;
  /** Stops north (draining in-flight calls up to `graceMs`), then west. */
  close(graceMs?: number): Promise<void>;
}

export interface ReloadResult {
  /** Bindings whose changes are now served. */
  applied: string[];
  /** Changes not applied, each saying why. */
  needsRestart: string[];
}

export interface StartGatewayOptions {
  registry?: ServiceRegistry;
  logger?: Logger;
  /** Serves whatever is not an RPC on the north ports (health, metrics). */
  fallback?: Parameters<typeof startNorth>[0]["fallback"];
  /** Where metrics and spans go (default: built from `config.telemetry`, closed with the gateway). */
  telemetry?: Telemetry;
  /** Where readiness is reported (default: the gateway's own). */
  readiness?: Readiness;
  /** Which reply partitions each north owns (default all; docs/scaling.md). */
  replyPartitions?: ReplyPartitions;
}

/**
 * Starts west first (so requests are consumed as soon as north accepts calls), then north,
 * which resolves only once its reply reader is positioned.
 */
export async function startGateway(
  config: GatewayConfig,
  opts: StartGatewayOptions = {},
): Promise<Gateway> {
  const logger = opts.logger ?? createLogger(config.logLevel ?? "info");
  const readiness = opts.readiness ?? createReadiness();
  const parts = {
    west: config.west.map((w) => readiness.expect(`west ${w.binding} consumer group`)),
    north: config.north.map((n) => readiness.expect(`north ${n.binding} reply reader`)),
  };
  const registry = opts.registry ?? (await loadServiceRegistry());
  const telemetry = opts.telemetry ?? (await createTelemetry(config));
  const { tracer, callLogLevel } = telemetry;
  // Ready until a reader holds a partition at a batch it cannot decode; then /readyz names it.
  const heldPart = readiness.expect("kafka records");
  heldPart.ready();
  const undecodable = createUndecodableWatch({
    policy: config.kafka.undecodableBatches ?? "fail",
    logger,
    metrics: telemetry.metrics.undecodable,
    onChange: (held) =>
      held.length === 0 ? heldPart.ready() : heldPart.unready(heldPartitionsReason(held)),
  });
  const kafka = createKafka(
    config.kafka,
    config.kafka.clientId ?? `zilla-${config.name}`,
    undecodable,
  );
  const west: West[] = [];
  const north: North[] = [];
  const health = (): OverallHealth => (readiness.snapshot().ready ? "SERVING" : "NOT_SERVING");
  try {
    for (const [i, w] of config.west.entries()) {
      west.push(
        await startWest({
          config: w,
          namespace: config.name,
          kafka,
          registry,
          logger: logger.child({ binding: w.binding }),
          metrics: telemetry.metrics.west(w.binding),
          ...(tracer ? { tracer } : {}),
          callLogLevel,
          // Not ready again while a newly assigned partition's changelog is restored.
          ...(parts.west[i] ? { restoreReadiness: parts.west[i] } : {}),
          // The group member says on every check whether it is a settled member.
          ...(parts.west[i] ? { readiness: parts.west[i] } : {}),
        }),
      );
      parts.west[i]?.ready();
    }
    for (const [i, n] of config.north.entries()) {
      // Ready until the binding's listeners reach their connection cap (then 503 until below).
      const connections = readiness.expect(`north ${n.binding} connections`);
      connections.ready();
      north.push(
        await startNorth({
          config: n,
          kafka,
          registry,
          logger: logger.child({ binding: n.binding }),
          ...(opts.fallback ? { fallback: opts.fallback } : {}),
          metrics: telemetry.metrics.north(n.binding),
          ...(tracer ? { tracer } : {}),
          callLogLevel,
          health,
          capacity: (atCap) =>
            atCap
              ? connections.unready("at the connection cap; new connections are refused")
              : connections.ready(),
          ...(opts.replyPartitions !== undefined
            ? {
                replyOwnership: {
                  partitions: opts.replyPartitions,
                  groupId: replyGroupId(config.name, n.binding),
                },
              }
            : {}),
        }),
      );
      parts.north[i]?.ready();
    }
  } catch (err) {
    for (const part of [...parts.west, ...parts.north]) part.unready("failed to start");
    await Promise.allSettled([...north.map((n) => n.close(0)), ...west.map((w) => w.close())]);
    undecodable.close();
    heldPart.remove();
    if (!opts.telemetry) await telemetry.shutdown();
    throw err;
  }
  const probe = createKafkaProbe(kafka);
  readiness.setKafkaProbe(probe.check);

  let current = config;
  let closing: Promise<void> | undefined;
  return {
    get config() {
      return current;
    },
    north,
    west,
    kafka,
    telemetry,
    readiness,
    reload(next) {
      const plan = planReload(current, next);
      const result: ReloadResult = { applied: [], needsRestart: [...plan.needsRestart] };
      let updated = current;
      for (const n of plan.north) {
        const i = updated.north.findIndex((c) => c.binding === n.binding);
        try {
          north[i]?.update(n);
          updated = { ...updated, north: updated.north.map((c, j) => (j === i ? n : c)) };
          result.applied.push(`north ${n.binding}`);
        } catch (err) {
          result.needsRestart.push(err instanceof Error ? err.message : String(err));
        }
      }
      for (const w of plan.west) {
        const i = updated.west.findIndex((c) => c.binding === w.binding);
        try {
          west[i]?.update(w.routes);
          updated = { ...updated, west: updated.west.map((c, j) => (j === i ? w : c)) };
          result.applied.push(`west ${w.binding}`);
        } catch (err) {
          result.needsRestart.push(err instanceof Error ? err.message : String(err));
        }
      }
      current = updated;
      return result;
    },
    close(graceMs = 10_000) {
      closing ??= (async () => {
        // Not ready from the first moment, so load balancers stop sending while calls drain.
        readiness.closing();
        await Promise.allSettled(north.map((n) => n.close(graceMs)));
        await Promise.allSettled(west.map((w) => w.close()));
        readiness.setKafkaProbe(undefined);
        undecodable.close();
        heldPart.remove();
        await probe.close();
        if (!opts.telemetry) await telemetry.shutdown();
      })();
      return closing;
    },
  };
}

/** Readiness's "Kafka answers": a Metadata request over one lazily opened connection. */
function createKafkaProbe(kafka: Kafka) {
  const cluster = new KafkaCluster(kafka.wire);
  return {
    // No topics asked for: the broker answers with its brokers only.
    check: () => cluster.refresh([]),
    async close() {
      cluster.close();
    },
  };
}
