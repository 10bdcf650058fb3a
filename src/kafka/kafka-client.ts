/**
 * The gateway's Kafka handle, from the typed `kafka` binding config: the settings of the
 * gateway's own client (src/kafka/client/), which carries all of its Kafka traffic. Each
 * part of the gateway (north's producer and reply reader, west's group member, the fetch
 * capability) opens its own connections from these settings.
 */
import type { KafkaClientConfig } from "../config/types.ts";
import type { WireSettings } from "./client/wire-connection.ts";

/** The gateway's Kafka handle: what its own client needs to reach the cluster. */
export interface Kafka {
  readonly wire: WireSettings;
}

/** The Kafka handle for the configured cluster. */
export function createKafka(config: KafkaClientConfig, clientId = "zilla-gateway"): Kafka {
  const wire: WireSettings = {
    servers: config.servers,
    clientId: config.clientId ?? clientId,
    connectTimeoutMs: 3_000,
    requestTimeoutMs: 30_000,
    retryTimeoutMs: 10_000,
    ...(config.sasl ? { sasl: config.sasl } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
  };
  return { wire };
}
