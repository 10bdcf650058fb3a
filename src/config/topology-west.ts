/**
 * West pipelines: each kafka-grpc remote_server, its routes from request topics to an upstream
 * reached through a grpc client, an http client, an optional tls client and a tcp client.
 */
import { childPath } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import type { KafkaGrpcRemoteServer } from "./schema.ts";
import type { TopologyContext } from "./topology-context.ts";
import type { KafkaClientFinder } from "./topology-kafka.ts";
import type { Links } from "./topology-links.ts";
import type { TlsResolver } from "./topology-tls.ts";
import type { KafkaGrpcRoute, TlsClientOptions, WestConfig } from "./types.ts";

/** One WestConfig per kafka-grpc remote_server. */
export function resolveWest(
  ctx: TopologyContext,
  links: Links,
  tls: TlsResolver,
  { kafkaClientVia }: KafkaClientFinder,
): WestConfig[] {
  const { ns, fail } = ctx;
  const { next, checkTarget } = links;
  const { clientTls } = tls;
  const checkedClientHttp = new Set<string>();
  const west: WestConfig[] = [];
  for (const b of ns.bindings.values()) {
    if (b.role !== "kafka-grpc.remote_server") continue;
    kafkaClientVia(b.entry, b.role);
    const routes: KafkaGrpcRoute[] = [];
    for (const route of b.routes) {
      const upstream = westUpstream(b, route.exit, route.with?.authority);
      if (!route.with || !upstream) continue;
      const withPath = childPath(route.path, "with");
      if (route.with.scheme === "https" && !upstream.tls) {
        fail(
          childPath(withPath, "scheme"),
          `scheme https needs a tls client between the http client and the tcp client; add one, or use scheme: http`,
        );
      }
      if (route.with.scheme === "http" && upstream.tls) {
        fail(
          childPath(withPath, "scheme"),
          "the upstream chain has a tls client, so the calls use TLS; use scheme: https",
        );
      }
      const when = route.when.flatMap((w) =>
        w.topic !== undefined && w.replyTo !== undefined
          ? [
              {
                topic: w.topic,
                replyTo: w.replyTo,
                ...(w.key !== undefined ? { key: w.key } : {}),
                ...(w.headers ? { headers: w.headers } : {}),
                ...(w.method !== undefined ? { method: w.method } : {}),
              },
            ]
          : [],
      );
      if (route.when.length === 0) {
        fail(
          childPath(route.path, "when"),
          "a kafka-grpc route needs when: [{ topic, reply-to }] naming the request and reply topics; add it",
        );
      }
      routes.push({
        when,
        with: {
          scheme: route.with.scheme,
          authority: route.with.authority,
          ...(upstream.tls ? { tls: upstream.tls } : {}),
          ...(upstream.connect ? { connect: upstream.connect } : {}),
        },
      });
    }
    west.push({ binding: b.name, routes, options: b.options });
  }

  function westUpstream(
    r: KafkaGrpcRemoteServer,
    exit: Ref | undefined,
    authority: string | undefined,
  ): { tls?: TlsClientOptions; connect?: { host: string; port: number } } | undefined {
    const grpc = checkTarget(exit, r.role, ["grpc.client"]);
    if (!grpc) return undefined;
    const http = next(grpc, ["http.client"]);
    if (http?.role !== "http.client") return undefined;
    if (!http.versions.includes("h2") && !checkedClientHttp.has(http.name)) {
      checkedClientHttp.add(http.name);
      fail(
        childPath(childPath(http.path, "options"), "versions"),
        "gRPC needs HTTP/2; add h2 to versions",
      );
    }
    let tcp = next(http, ["tls.client", "tcp.client"]);
    let tls: TlsClientOptions | undefined;
    if (tcp?.role === "tls.client") {
      tls = clientTls(tcp);
      if (tcp.alpn && !tcp.alpn.includes("h2")) {
        fail(
          childPath(childPath(tcp.path, "options"), "alpn"),
          "gRPC needs HTTP/2; add h2 to alpn",
        );
      }
      if (tls && !tls.alpn) tls.alpn = ["h2"];
      tcp = next(tcp, ["tcp.client"]);
    }
    if (tcp?.role !== "tcp.client") return undefined;
    // Only worth passing on when it differs from the authority the route already names.
    const connect =
      tcp.host !== undefined && tcp.port !== undefined && `${tcp.host}:${tcp.port}` !== authority
        ? { host: tcp.host, port: tcp.port }
        : undefined;
    return { ...(tls ? { tls } : {}), ...(connect ? { connect } : {}) };
  }
  return west;
}
