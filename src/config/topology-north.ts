/**
 * North pipelines: each tcp server port leads through an optional tls server, an http server
 * and a grpc server to a grpc-kafka proxy; each proxy with its listeners, services, methods
 * and routes becomes one NorthConfig.
 */
import { childPath } from "./config-error.ts";
import { resolveNorthGuards } from "./resolve-guards.ts";
import type { Binding, GrpcKafkaProxy, GrpcServer, HttpServer } from "./schema.ts";
import type { TopologyContext } from "./topology-context.ts";
import type { KafkaClientFinder } from "./topology-kafka.ts";
import type { Links } from "./topology-links.ts";
import type { TlsResolver } from "./topology-tls.ts";
import type { NorthConfig, NorthListener } from "./types.ts";

/** A grpc-kafka proxy and what leads to it. */
interface NorthDraft {
  proxy: GrpcKafkaProxy;
  listeners: NorthListener[];
  grpcServers: Set<GrpcServer>;
  httpServers: Set<HttpServer>;
}

/** The north pipelines of the namespace, one per grpc-kafka proxy that a tcp server reaches. */
export function resolveNorth(
  ctx: TopologyContext,
  links: Links,
  tls: TlsResolver,
  { kafkaClientVia }: KafkaClientFinder,
): NorthConfig[] {
  const { ns, registry, errors, fail } = ctx;
  const drafts = draftNorth(ctx, links, tls);
  const referenced = new Set<string>();
  for (const b of ns.bindings.values()) {
    if (b.exit) referenced.add(b.exit.name);
    for (const route of b.routes) if (route.exit) referenced.add(route.exit.name);
  }
  const north: NorthConfig[] = [];
  for (const draft of drafts.values()) {
    const { proxy } = draft;
    for (const route of proxy.routes) if (route.exit) kafkaClientVia(route.exit, proxy.role);
    if (draft.listeners.length === 0) {
      // When something names the proxy and other errors were found, its chain is most likely
      // broken further up, and that was reported.
      if (!referenced.has(proxy.name) || errors.length === 0) {
        fail(
          proxy.path,
          "no tcp server leads to this grpc-kafka proxy (tcp server → http server → grpc server → here); add that chain or remove the proxy",
        );
      }
      continue;
    }
    const services = new Set<string>();
    const methods = new Set<string>();
    let allMethods = false;
    for (const g of draft.grpcServers) {
      const served = grpcServerServices(ctx, g);
      for (const s of served) services.add(s);
      const m = grpcServerMethods(ctx, g);
      if (m === "all") allMethods = true;
      else for (const x of m) methods.add(x);
    }
    for (const route of proxy.routes) {
      for (const w of route.when) {
        if (w.method === undefined || registry.matching(w.method).length === 0) continue;
        const service = w.method.slice(0, w.method.lastIndexOf("/"));
        if (services.size > 0 && !services.has(service)) {
          fail(
            childPath(w.path, "method"),
            `"${w.method}" is not served: ${[...draft.grpcServers].map((g) => `grpc server "${g.name}"`).join(", ")} serves ${[...services].join(", ")}; add the service's proto to its catalog, or fix the name`,
          );
        }
      }
    }
    const accessControls = [...draft.httpServers].map((h) => h.accessControl);
    const accessControl = accessControls[0];
    if (accessControls.some((a) => JSON.stringify(a) !== JSON.stringify(accessControl))) {
      fail(
        proxy.path,
        `the http servers in front of this proxy (${[...draft.httpServers].map((h) => h.name).join(", ")}) have different access-control; make them the same`,
      );
    }
    const guarding = resolveNorthGuards({
      ns,
      proxy,
      grpcServers: draft.grpcServers,
      listeners: draft.listeners,
      fail,
    });
    north.push({
      binding: proxy.name,
      listeners: draft.listeners,
      ...(accessControl ? { accessControl } : {}),
      services: [...services],
      ...(!allMethods && methods.size > 0 ? { methods: [...methods] } : {}),
      routes: proxy.routes.flatMap((r, i) => {
        if (!r.with) return [];
        const guarded = guarding.routeGuards[i];
        return [
          {
            when: r.when.map(({ method, metadata }) => ({
              ...(method !== undefined ? { method } : {}),
              ...(metadata ? { metadata } : {}),
            })),
            with: r.with,
            ...(guarded ? { guarded } : {}),
          },
        ];
      }),
      options: proxy.options,
      ...(guarding.guards ? { guards: guarding.guards } : {}),
      ...(guarding.methodGuards ? { methodGuards: guarding.methodGuards } : {}),
    });
  }
  return north;
}

/** Follows every tcp server port to the proxy it leads to, checking each link on the way. */
function draftNorth(
  ctx: TopologyContext,
  links: Links,
  tls: TlsResolver,
): Map<GrpcKafkaProxy, NorthDraft> {
  const { ns, errors, fail } = ctx;
  const { next, checkTarget } = links;
  const { serverTls } = tls;
  const drafts = new Map<GrpcKafkaProxy, NorthDraft>();
  for (const b of ns.bindings.values()) {
    if (b.role === "grpc-kafka.proxy") {
      drafts.set(b, { proxy: b, listeners: [], grpcServers: new Set(), httpServers: new Set() });
    }
  }
  const checkedHttp = new Set<HttpServer>();
  const proxyOfGrpcServer = new Map<GrpcServer, GrpcKafkaProxy | undefined>();
  const proxyOf = (g: GrpcServer): GrpcKafkaProxy | undefined => {
    if (proxyOfGrpcServer.has(g)) return proxyOfGrpcServer.get(g);
    const target = next(g, ["grpc-kafka.proxy"]);
    const proxy = target?.role === "grpc-kafka.proxy" ? target : undefined;
    proxyOfGrpcServer.set(g, proxy);
    return proxy;
  };
  const portOwners = new Map<number, string>();
  for (const b of ns.bindings.values()) {
    if (b.role !== "tcp.server") continue;
    const portPath = childPath(childPath(b.path, "options"), "port");
    for (const port of b.ports) {
      const owner = portOwners.get(port);
      if (owner !== undefined && port !== 0) {
        fail(
          portPath,
          `port ${port} is also a port of tcp server "${owner}"; give each port to one tcp server`,
        );
      }
      portOwners.set(port, b.name);
    }
    // A port entry that did not decode is already reported: a route naming it is not wrong too.
    const portsDecoded = !errors.some(
      (e) => e.path === portPath || e.path.startsWith(`${portPath}[`),
    );
    for (const route of b.routes) {
      for (const port of route.ports ?? []) {
        if (portsDecoded && !b.ports.includes(port)) {
          fail(
            childPath(route.path, "when"),
            `port ${port} is not one of this server's ports (${b.ports.join(", ")}); add it to options.port or fix the route`,
          );
        }
      }
    }
    for (const port of b.ports) {
      const route = b.routes.find((r) => r.ports === undefined || r.ports.includes(port));
      const exit = route?.exit ?? b.exit;
      if (!exit) {
        fail(
          portPath,
          `port ${port} has no route; add a route with when: [{ port: ${port} }] and an exit, or an exit on the binding`,
        );
        continue;
      }
      const first = checkTarget(exit, b.role, ["tls.server", "http.server"]);
      if (!first) continue;
      let tls: NorthListener["tls"];
      let http: Binding | undefined = first;
      if (first.role === "tls.server") {
        tls = serverTls(first);
        http = next(first, ["http.server"]);
      }
      if (http?.role !== "http.server") continue;
      if (!checkedHttp.has(http)) {
        checkedHttp.add(http);
        if (!http.versions.includes("h2")) {
          fail(
            childPath(childPath(http.path, "options"), "versions"),
            "gRPC needs HTTP/2; add h2 to versions",
          );
        }
      }
      const grpc = next(http, ["grpc.server"]);
      if (grpc?.role !== "grpc.server") continue;
      const proxy = proxyOf(grpc);
      const draft = proxy ? drafts.get(proxy) : undefined;
      if (!draft) continue;
      const authorization = http.authorization
        ? { guard: http.authorization.guard.name, credentials: http.authorization.credentials }
        : undefined;
      draft.listeners.push({
        host: b.host,
        port,
        ...(tls ? { tls } : {}),
        ...(authorization ? { authorization } : {}),
      });
      draft.grpcServers.add(grpc);
      draft.httpServers.add(http);
    }
  }
  return drafts;
}

/** The services a grpc server serves: its catalog's protos, else the services its routes name. */
function grpcServerServices(ctx: TopologyContext, g: GrpcServer): string[] {
  const { ns, registry, fail, protoServices } = ctx;
  const out: string[] = [];
  if (g.catalog.length === 0) {
    for (const r of g.routes) {
      for (const w of r.when) {
        if (w.method && registry.matching(w.method).length > 0) {
          const service = w.method.slice(0, w.method.lastIndexOf("/"));
          if (!out.includes(service)) out.push(service);
        }
      }
    }
    if (out.length === 0) {
      fail(
        childPath(g.path, "catalog"),
        "the grpc server names no service; add catalog: { <catalog>: [{ subject: <proto> }] }",
      );
    }
    return out;
  }
  for (const c of g.catalog) {
    const names = protoServices.get(`${c.catalog.name}/${c.subject}`);
    if (names === undefined) continue; // missing catalog, subject or file: already reported
    const file = ns.catalogs.get(c.catalog.name)?.subjects.get(c.subject)?.file ?? c.subject;
    if (names.length === 0)
      fail(c.path, `"${file}" declares no service; name a proto that declares the gRPC service`);
    for (const name of names) {
      if (!registry.services.has(name)) {
        fail(
          c.path,
          `"${file}" declares service "${name}", which is not generated; run "buf generate" after adding the proto to proto/`,
        );
      } else if (!out.includes(name)) out.push(name);
    }
  }
  return out;
}

/** The methods a grpc server's routes let through ("all" without routes or conditions). */
function grpcServerMethods(ctx: TopologyContext, g: GrpcServer): string[] | "all" {
  const { fail } = ctx;
  if (g.routes.length === 0) return "all";
  const out: string[] = [];
  let all = false;
  for (const r of g.routes) {
    if (r.when.length === 0) all = true;
    for (const w of r.when) {
      if (w.metadata) {
        fail(
          childPath(w.path, "metadata"),
          "metadata conditions on a grpc server route are not supported; put them on the grpc-kafka proxy's routes",
        );
      }
      if (w.method === undefined) all = true;
      else out.push(w.method);
    }
  }
  return all ? "all" : out;
}
