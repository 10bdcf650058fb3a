/**
 * The Kafka side of the graph: each chain (grpc-kafka routes, the remote server's entry)
 * leads through the cache bindings to a kafka client, and all of them to one cluster.
 */
import { zstdCompressionAvailable } from "../kafka/protocol/compression.ts";
import { childPath } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import type { KafkaClient, Role, TcpClient } from "./schema.ts";
import type { TopologyContext } from "./topology-context.ts";
import type { Links } from "./topology-links.ts";
import type { TlsResolver } from "./topology-tls.ts";
import { defaultKafkaGroupTimings, type KafkaClientConfig } from "./types.ts";

export interface KafkaClientFinder {
  /** The kafka clients reached so far, by name. */
  kafkaClients: Map<string, KafkaClient>;
  /** The kafka client `r` leads to (through cache client and server), recorded as reached. */
  kafkaClientVia(r: Ref | undefined, from: Role): KafkaClient | undefined;
}

/** Follows chains to their kafka client and remembers every client reached. */
export function createKafkaClientFinder(links: Links): KafkaClientFinder {
  const { next, checkTarget } = links;
  const kafkaClients = new Map<string, KafkaClient>();
  const kafkaEntryRoles: Role[] = ["kafka.cache_client", "kafka.client"];
  const kafkaClientVia = (r: Ref | undefined, from: Role): KafkaClient | undefined => {
    let b = checkTarget(r, from, kafkaEntryRoles);
    for (let hops = 0; b && hops < 4; hops++) {
      if (b.role === "kafka.client") {
        kafkaClients.set(b.name, b);
        return b;
      }
      if (b.role === "kafka.cache_client") b = next(b, ["kafka.cache_server", "kafka.client"]);
      else if (b.role === "kafka.cache_server") b = next(b, ["kafka.client"]);
      else return undefined;
    }
    return undefined;
  };
  return { kafkaClients, kafkaClientVia };
}

/** The one cluster the reached kafka clients name (undefined, reported, when not exactly one). */
export function resolveKafkaCluster(
  ctx: TopologyContext,
  links: Links,
  tls: TlsResolver,
  { kafkaClients }: KafkaClientFinder,
): KafkaClientConfig | undefined {
  const { opts, fail } = ctx;
  const { next } = links;
  const { clientTls } = tls;
  let kafka: KafkaClientConfig | undefined;
  if (kafkaClients.size > 1) {
    fail(
      "bindings",
      `the kafka clients ${[...kafkaClients.keys()].join(", ")} are all used; this gateway connects to one Kafka cluster, so lead every chain to one kafka client`,
    );
  }
  const [client] = kafkaClients.values();
  if (client) kafka = kafkaConfig(client);

  function kafkaConfig(k: KafkaClient): KafkaClientConfig | undefined {
    const servers = opts.kafkaServers ?? k.servers;
    if (!servers || servers.length === 0) {
      return fail(
        childPath(childPath(k.path, "options"), "servers"),
        "the kafka client has no servers; add options.servers (host:port list) or pass --kafka-servers",
      );
    }
    const out: KafkaClientConfig = { servers: [...servers], ...(k.sasl ? { sasl: k.sasl } : {}) };
    const compression = opts.kafkaCompression ?? k.compression;
    if (compression === "zstd" && !zstdCompressionAvailable()) {
      return fail(
        childPath(childPath(k.path, "options"), "compression"),
        `zstd compression needs a runtime whose node:zlib has zstd (Bun, Deno, Node 22.15+); this is Node ${process.versions.node}: choose gzip, snappy or lz4, or run under Bun`,
      );
    }
    if (compression && compression !== "none") out.compression = compression;
    const undecodable = opts.kafkaUndecodableBatches ?? k.undecodableBatches;
    if (undecodable) out.undecodableBatches = undecodable;
    const group = { ...k.group, ...opts.kafkaGroup };
    if (Object.keys(group).length > 0) out.group = group;
    if (k.produceRetryMaxMs !== undefined) out.produceRetryMaxMs = k.produceRetryMaxMs;
    const session = group.sessionTimeoutMs ?? defaultKafkaGroupTimings.sessionTimeoutMs;
    const heartbeat = group.heartbeatIntervalMs ?? defaultKafkaGroupTimings.heartbeatIntervalMs;
    if (heartbeat >= session) {
      fail(
        childPath(childPath(k.path, "options"), "group"),
        `the heartbeat interval (${heartbeat} ms) must be below the session timeout (${session} ms), usually a third of it; set group.heartbeat-interval-ms or group.session-timeout-ms (or --kafka-heartbeat-interval-ms / --kafka-session-timeout-ms)`,
      );
    }
    let tcp = next(k, ["tls.client", "tcp.client"]);
    if (tcp?.role === "tls.client") {
      const tls = clientTls(tcp);
      if (tls) out.tls = tls;
      tcp = next(tcp, ["tcp.client"]);
    }
    if (tcp?.role === "tcp.client") checkKafkaTcp(tcp);
    return out;
  }

  function checkKafkaTcp(tcp: TcpClient): void {
    if (tcp.host !== undefined || tcp.port !== undefined) {
      fail(
        childPath(tcp.path, "options"),
        "the kafka client connects to its servers (and the brokers they announce); remove host and port from this tcp client",
      );
    }
  }
  return kafka;
}
