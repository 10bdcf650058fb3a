/**
 * Composition root: builds the Kafka client, the west remote servers and the north front
 * doors from a resolved config, and owns their start and stop order.
 */
import type { GatewayConfig } from "./config/types.ts";
import { createKafka, type Kafka } from "./kafka/kafka-client.ts";
import { type North, startNorth } from "./north/north-server.ts";
import { createLogger, type Logger } from "./ops/logger.ts";
import { loadServiceRegistry, type ServiceRegistry } from "./service-registry.ts";
import { startWest, type West } from "./west/remote-server.ts";

export interface Gateway {
  readonly config: GatewayConfig;
  readonly north: readonly North[];
  readonly west: readonly West[];
  readonly kafka: Kafka;
  /** Stops north (draining in-flight calls up to `graceMs`), then west. */
  close(graceMs?: number): Promise<void>;
}

export interface StartGatewayOptions {
  registry?: ServiceRegistry;
  logger?: Logger;
  /** Serves whatever is not an RPC on the north ports (health, metrics). */
  fallback?: Parameters<typeof startNorth>[0]["fallback"];
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
  const registry = opts.registry ?? (await loadServiceRegistry());
  const kafka = createKafka(config.kafka, logger, config.kafka.clientId ?? `zilla-${config.name}`);
  const west: West[] = [];
  const north: North[] = [];
  try {
    for (const w of config.west) {
      west.push(
        await startWest({
          config: w,
          namespace: config.name,
          kafka,
          registry,
          logger: logger.child({ binding: w.binding }),
        }),
      );
    }
    for (const n of config.north) {
      north.push(
        await startNorth({
          config: n,
          kafka,
          registry,
          logger: logger.child({ binding: n.binding }),
          ...(opts.fallback ? { fallback: opts.fallback } : {}),
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled([...north.map((n) => n.close(0)), ...west.map((w) => w.close())]);
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    config,
    north,
    west,
    kafka,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        await Promise.allSettled(north.map((n) => n.close(graceMs)));
        await Promise.allSettled(west.map((w) => w.close()));
      })();
      return closing;
    },
  };
}
