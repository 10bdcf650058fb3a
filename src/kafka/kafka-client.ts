/**
 * The gateway's Kafka handle, from the typed `kafka` binding config: the settings of the
 * gateway's own client (src/kafka/client/), which carries all of its Kafka traffic. Each
 * part of the gateway (north's producer and reply reader, west's group member, the fetch
 * capability) opens its own connections from these settings.
 */
import type { KafkaClientConfig, KafkaGroupTimings } from "../config/types.ts";
import type { WireSettings } from "./client/wire-connection.ts";
import type { UndecodableWatch } from "./undecodable-batches.ts";

/** The gateway's Kafka handle: what its own client needs to reach the cluster. */
export interface Kafka {
  readonly wire: WireSettings;
  /** Consumer-group timings from the kafka client binding (absent: the defaults). */
  readonly group?: KafkaGroupTimings;
  /**
   * Where readers report batches they cannot decode, and the policy for them (hold the
   * partition, or skip). Absent: partitions are held, said only in the reader's log.
   */
  readonly undecodable?: UndecodableWatch;
}

/** The Kafka handle for the configured cluster. */
export function createKafka(
  config: KafkaClientConfig,
  clientId = "zilla-gateway",
  undecodable?: UndecodableWatch,
): Kafka {
  const wire: WireSettings = {
    servers: config.servers,
    clientId: config.clientId ?? clientId,
    connectTimeoutMs: 3_000,
    requestTimeoutMs: 30_000,
    retryTimeoutMs: 10_000,
    ...(config.produceRetryMaxMs !== undefined
      ? { produceRetryMaxMs: config.produceRetryMaxMs }
      : {}),
    ...(config.sasl ? { sasl: config.sasl } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.compression ? { compression: config.compression } : {}),
  };
  return {
    wire,
    ...(config.group ? { group: config.group } : {}),
    ...(undecodable ? { undecodable } : {}),
  };
}
