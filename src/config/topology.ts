/**
 * The binding graph → north and west pipelines. Checks every reference (exit, entry, vault,
 * catalog, guard), the files they name (catalog protos, vault stores), the methods routes
 * name (against gen/), and that each chain is one this gateway runs:
 *
 *   north: tcp server ─port─▶ [tls server] ▶ http server ▶ grpc server ▶ grpc-kafka proxy
 *          ─route─▶ kafka cache_client ▶ cache_server ▶ kafka client ▶ [tls client] ▶ tcp client
 *   west:  kafka-grpc remote_server (entry: the kafka chain) ─route─▶ grpc client ▶ http client
 *          ▶ [tls client] ▶ tcp client
 */
import type { ConfigError } from "./config-error.ts";
import { checkJwtKeys } from "./resolve-guards.ts";
import type { Namespace } from "./schema.ts";
import type { TopologyContext, TopologyOptions } from "./topology-context.ts";
import { loadTopologyFiles } from "./topology-files.ts";
import { createKafkaClientFinder, resolveKafkaCluster } from "./topology-kafka.ts";
import { createLinks } from "./topology-links.ts";
import { resolveNorth } from "./topology-north.ts";
import { checkReferences, checkRouteMethods } from "./topology-references.ts";
import { resolveTelemetry } from "./topology-telemetry.ts";
import { createTlsResolver } from "./topology-tls.ts";
import { resolveWest } from "./topology-west.ts";
import type { GatewayConfig } from "./types.ts";

/** Resolves the namespace into a GatewayConfig; any problem goes to `errors`. */
export async function resolveTopology(
  errors: ConfigError[],
  ns: Namespace,
  opts: TopologyOptions,
): Promise<GatewayConfig | undefined> {
  const fail = (path: string, message: string): undefined => {
    errors.push({ path, message });
    return undefined;
  };
  const { registry } = opts;
  const files = await loadTopologyFiles(ns, opts, fail);
  const ctx: TopologyContext = { ns, opts, registry, errors, fail, ...files };
  await checkJwtKeys(ns, fail);
  checkReferences(ctx);
  checkRouteMethods(ctx);
  const links = createLinks(ns, fail);
  const tls = createTlsResolver(ctx);
  const kafkaClients = createKafkaClientFinder(links);
  // North and west first: they record the kafka clients their chains reach.
  const north = resolveNorth(ctx, links, tls, kafkaClients);
  const west = resolveWest(ctx, links, tls, kafkaClients);
  const kafka = resolveKafkaCluster(ctx, links, tls, kafkaClients);
  const telemetry = resolveTelemetry(ctx, tls);

  if (north.length === 0 && west.length === 0 && errors.length === 0) {
    fail(
      "bindings",
      "there is no grpc-kafka proxy and no kafka-grpc remote_server; add at least one (see examples/grpc.kafka.proxy/zilla.yaml)",
    );
  }
  if (!kafka && errors.length === 0) {
    fail(
      "bindings",
      "no kafka client binding is reached; lead the grpc-kafka routes and the remote server's entry to a kafka client",
    );
  }
  if (errors.length > 0 || ns.name === undefined || !kafka) return undefined;
  return {
    name: ns.name,
    kafka,
    north,
    west,
    ...(telemetry ? { telemetry } : {}),
  };
}
