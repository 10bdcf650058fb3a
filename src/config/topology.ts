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

import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { rootCertificates } from "node:tls";
import { type CompressionCodec, zstdCompressionAvailable } from "../kafka/protocol/compression.ts";
import type { UndecodablePolicy } from "../kafka/undecodable-batches.ts";
import { runtimeDescription, verifiesClientCertificates } from "../runtime/runtime.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import { type ConfigError, childPath, closestName } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import {
  type PemCertificate,
  pemCertificates,
  pkcs12FriendlyNames,
  pkcs12OpenProblem,
} from "./keystore.ts";
import { protoServiceNames } from "./proto-services.ts";
import { checkAuthorizationGuard, checkJwtKeys, resolveNorthGuards } from "./resolve-guards.ts";
import type {
  Binding,
  GrpcKafkaProxy,
  GrpcServer,
  HttpServer,
  KafkaClient,
  KafkaGrpcRemoteServer,
  Namespace,
  Role,
  Store,
  TcpClient,
  TlsClient,
  TlsServer,
} from "./schema.ts";
import type {
  GatewayConfig,
  KafkaClientConfig,
  KafkaGrpcRoute,
  NorthConfig,
  NorthListener,
  TelemetryConfig,
  TelemetryExporter,
  TlsClientOptions,
  WestConfig,
} from "./types.ts";

export interface TopologyOptions {
  /** Directory that catalog and vault paths are relative to (the config file's). */
  baseDir: string;
  registry: ServiceRegistry;
  /** Replaces the kafka client's `servers`. */
  kafkaServers?: string[];
  /** Replaces the kafka client's `compression` (`--kafka-compression`). */
  kafkaCompression?: CompressionCodec;
  /** Replaces the kafka client's `undecodable-batches` (`--kafka-undecodable-batches`). */
  kafkaUndecodableBatches?: UndecodablePolicy;
}

type LoadedStore =
  | { kind: "pkcs12"; file: string; bytes: Uint8Array; aliases: string[] }
  | { kind: "pem"; file: string; certificates: PemCertificate[] };

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

  // --- files: catalog protos and vault stores --------------------------------------------
  const protoServices = new Map<string, string[]>(); // by catalog/subject
  for (const catalog of ns.catalogs.values()) {
    for (const [subject, { file, path }] of catalog.subjects) {
      const text = await readText(opts.baseDir, file);
      if (text === undefined) {
        fail(
          path,
          `file "${file}" does not exist (looked for ${resolve(opts.baseDir, file)}); create it or fix the path, which is relative to the config file's directory`,
        );
        continue;
      }
      protoServices.set(`${catalog.name}/${subject}`, protoServiceNames(text));
    }
  }
  const stores = new Map<Store, LoadedStore>();
  for (const vault of ns.vaults.values()) {
    for (const [use, store] of [
      ["keys", vault.keys],
      ["trust", vault.trust],
    ] as const) {
      if (!store) continue;
      const loaded = await loadStore(store, use, opts.baseDir, fail);
      if (loaded) stores.set(store, loaded);
    }
  }

  await checkJwtKeys(ns, fail);

  // --- references --------------------------------------------------------------------------
  const binding = (r: Ref | undefined): Binding | undefined =>
    r ? ns.bindings.get(r.name) : undefined;
  const checkRef = (r: Ref | undefined, kind: string, names: Iterable<string>, where: string) => {
    if (!r) return;
    const all = [...names];
    if (all.includes(r.name)) return;
    const guess = closestName(r.name, all);
    fail(
      r.path,
      guess
        ? `no ${kind} is named "${r.name}"; did you mean "${guess}"?`
        : `no ${kind} is named "${r.name}"; add it under ${where} or fix the name`,
    );
  };
  for (const b of ns.bindings.values()) {
    checkRef(b.exit, "binding", ns.bindings.keys(), "bindings");
    for (const route of b.routes) {
      checkRef(route.exit, "binding", ns.bindings.keys(), "bindings");
      for (const guard of route.guarded) {
        checkRef(guard, "guard", ns.guards.keys(), "guards");
        if (b.role !== "grpc.server" && b.role !== "grpc-kafka.proxy" && b.role !== "unknown") {
          fail(
            guard.path,
            `"guarded" on ${b.role.replace(".", " ")} routes is not supported by this gateway; guard the grpc server's or the grpc-kafka proxy's routes`,
          );
        }
      }
    }
    if (b.role === "tls.server" || b.role === "tls.client")
      checkRef(b.vault, "vault", ns.vaults.keys(), "vaults");
    if (b.role === "tls.server") checkAuthorizationGuard(b.authorization, "x509", ns, fail);
    if (b.role === "http.server") checkAuthorizationGuard(b.authorization?.guard, "jwt", ns, fail);
    if (b.role === "kafka-grpc.remote_server")
      checkRef(b.entry, "binding", ns.bindings.keys(), "bindings");
    if (b.role === "grpc.server") {
      for (const c of b.catalog) {
        const catalog = ns.catalogs.get(c.catalog.name);
        checkRef(c.catalog, "catalog", ns.catalogs.keys(), "catalogs");
        if (catalog && !catalog.subjects.has(c.subject)) {
          const subjects = [...catalog.subjects.keys()];
          const guess = closestName(c.subject, subjects);
          fail(
            c.path,
            `catalog "${catalog.name}" has no subject "${c.subject}"${guess ? `; did you mean "${guess}"?` : ""} (its subjects: ${subjects.join(", ") || "none"}); add it under catalogs.${catalog.name}.options.subjects or fix the name`,
          );
        }
      }
    }
  }
  for (const exporter of ns.telemetry?.exporters ?? []) {
    checkRef(exporter.vault, "vault", ns.vaults.keys(), "vaults");
  }

  // --- methods named by routes must be generated -------------------------------------------
  const methodKnown = (method: string | undefined, path: string): boolean => {
    if (method === undefined) return false;
    if (registry.matching(method).length > 0) return true;
    const wildcard = method.endsWith("/*");
    fail(
      path,
      wildcard
        ? `"${method}" matches no generated service; run "buf generate" after adding its proto to proto/, or fix the name`
        : `"${method}" is not a method of any generated service; run "buf generate" after adding it to proto/, or fix the name`,
    );
    return false;
  };
  for (const b of ns.bindings.values()) {
    if (b.role === "grpc.server" || b.role === "grpc.client" || b.role === "grpc-kafka.proxy") {
      for (const r of b.routes)
        for (const w of r.when) methodKnown(w.method, childPath(w.path, "method"));
    }
    if (b.role === "kafka-grpc.remote_server") {
      for (const r of b.routes)
        for (const w of r.when) methodKnown(w.method, childPath(w.path, "method"));
    }
  }

  // --- links ---------------------------------------------------------------------------------
  const describeRole = (role: Role) => role.replace(".", " ");
  /** "a tls server", "an http client". */
  const aRole = (role: Role) => `${role.startsWith("http") ? "an" : "a"} ${describeRole(role)}`;
  const anyOf = (roles: readonly Role[]) => roles.map(aRole).join(" or ");
  const nextCache = new Map<Binding, Binding | undefined>();
  /** The one binding `b` leads to, which must have one of the `expected` roles. */
  const next = (b: Binding, expected: readonly Role[]): Binding | undefined => {
    if (nextCache.has(b)) return nextCache.get(b);
    nextCache.set(b, undefined);
    const exits = new Map<string, Ref>();
    for (const route of b.routes) if (route.exit) exits.set(route.exit.name, route.exit);
    if (b.exit && !exits.has(b.exit.name)) exits.set(b.exit.name, b.exit);
    const wanted = expected.map(describeRole).join(" or ");
    if (exits.size === 0) {
      if (b.routes.every((r) => r.exit === undefined)) {
        fail(
          childPath(b.path, "exit"),
          `required key "exit" is missing; add the ${wanted} this ${describeRole(b.role)} leads to`,
        );
      }
      return undefined;
    }
    if (exits.size > 1) {
      fail(
        childPath(b.path, "routes"),
        `routes lead to different bindings (${[...exits.keys()].join(", ")}); this gateway supports a single ${wanted} after ${aRole(b.role)}, so give every route the same exit`,
      );
      return undefined;
    }
    const [exit] = exits.values();
    const target = binding(exit);
    if (!exit || !target || target.role === "unknown") return undefined;
    if (!expected.includes(target.role)) {
      fail(
        exit.path,
        `"${target.name}" is ${aRole(target.role)}; ${aRole(b.role)} must lead to ${anyOf(expected)} here`,
      );
      return undefined;
    }
    nextCache.set(b, target);
    return target;
  };
  const checkTarget = (
    r: Ref | undefined,
    from: Role,
    expected: readonly Role[],
  ): Binding | undefined => {
    const target = binding(r);
    if (!r || !target || target.role === "unknown") return undefined;
    if (!expected.includes(target.role)) {
      return fail(
        r.path,
        `"${target.name}" is ${aRole(target.role)}; ${aRole(from)} must lead to ${anyOf(expected)} here`,
      );
    }
    return target;
  };

  // --- TLS ---------------------------------------------------------------------------------
  const pickKeystore = (
    vaultRef: Ref | undefined,
    aliases: Ref[],
    aliasesPath: string,
    who: string,
  ) => {
    const vault = vaultRef ? ns.vaults.get(vaultRef.name) : undefined;
    if (!vaultRef || !vault) {
      if (!vaultRef) fail(aliasesPath, `keys need a vault; add "vault" to ${who}`);
      return undefined;
    }
    if (!vault.keys) {
      if (vault.declares.keys) return undefined;
      return fail(
        vaultRef.path,
        `vault "${vault.name}" has no keys store; add options.keys (store, type, password) to it`,
      );
    }
    const loaded = stores.get(vault.keys);
    if (loaded?.kind !== "pkcs12") return undefined;
    for (const alias of aliases) {
      if (loaded.aliases.length > 0 && !loaded.aliases.includes(alias.name)) {
        fail(
          alias.path,
          `keystore "${loaded.file}" has no key "${alias.name}" (its aliases: ${loaded.aliases.join(", ")}); fix the alias`,
        );
      }
    }
    return {
      pfx: loaded.bytes,
      ...(vault.keys.password !== undefined ? { passphrase: vault.keys.password } : {}),
    };
  };
  const serverTlsCache = new Map<TlsServer, NorthListener["tls"]>();
  const serverTls = (t: TlsServer): NorthListener["tls"] => {
    if (serverTlsCache.has(t)) return serverTlsCache.get(t);
    const keysPath = childPath(childPath(t.path, "options"), "keys");
    if (t.keys.length === 0)
      fail(keysPath, "list the alias of the server key in the vault, e.g. [localhost]");
    const keystore = pickKeystore(t.vault, t.keys, keysPath, `tls server "${t.name}"`);
    const alpn = t.alpn ?? ["h2"];
    if (!alpn.includes("h2")) {
      fail(childPath(childPath(t.path, "options"), "alpn"), "gRPC needs HTTP/2; add h2 to alpn");
    }
    const clients = clientCertificates(t);
    const result = keystore
      ? { ...keystore, ...(t.sni ? { sni: t.sni } : {}), alpn, ...clients }
      : undefined;
    serverTlsCache.set(t, result);
    return result;
  };
  /** A tls server's client certificate settings: trust anchors, mutual, the x509 guard. */
  const clientCertificates = (t: TlsServer): Partial<NonNullable<NorthListener["tls"]>> => {
    const optionsPath = childPath(t.path, "options");
    // Kept even when the rest fails (reported), so routes guarded by it report nothing more.
    const authorization = t.authorization ? { authorization: { guard: t.authorization.name } } : {};
    // Zilla's default: listing trust asks every client for a certificate.
    const mutual = t.mutual ?? (t.trust?.length ? "required" : "none");
    if (mutual === "none") {
      if (t.authorization) {
        fail(
          t.authorization.path,
          `guard "${t.authorization.name}" reads client certificates, but this tls server asks for none; add trust: [<CA alias>] (and mutual: required or requested)`,
        );
      }
      return authorization;
    }
    if (!verifiesClientCertificates) {
      fail(
        childPath(optionsPath, t.mutual ? "mutual" : "trust"),
        `client certificates (mutual: ${mutual}) cannot be verified on ${runtimeDescription()}, whose TLS server does not check them against trust; run the gateway on Node or Bun for mutual TLS`,
      );
      return authorization;
    }
    if (!t.trust?.length) {
      fail(
        childPath(optionsPath, "mutual"),
        `mutual: ${mutual} needs the CAs that client certificates must chain to; add trust: [<CA alias>] naming certificates in the vault's trust store`,
      );
      return authorization;
    }
    const ca = trustCertificates(
      t.vault,
      t.trust,
      childPath(optionsPath, "trust"),
      `tls server "${t.name}"`,
    );
    return ca ? { ca, mutual, ...authorization } : authorization;
  };
  /** The PEM certificates `aliases` name in the vault's trust store (undefined: reported). */
  const trustCertificates = (
    vaultRef: Ref | undefined,
    aliases: Ref[],
    trustPath: string,
    who: string,
  ): string[] | undefined => {
    const vault = vaultRef ? ns.vaults.get(vaultRef.name) : undefined;
    if (!vaultRef) return fail(trustPath, `trust needs a vault; add "vault" to ${who}`);
    if (vault && !vault.trust) {
      if (!vault.declares.trust)
        fail(
          vaultRef.path,
          `vault "${vault.name}" has no trust store; add options.trust (store: a PEM file, type: pem) to it`,
        );
      return undefined;
    }
    const loaded = vault?.trust ? stores.get(vault.trust) : undefined;
    if (loaded?.kind !== "pem") return undefined;
    const selected: string[] = [];
    for (const alias of aliases) {
      const found = loaded.certificates.filter((c) => c.commonName === alias.name);
      if (found.length === 0) {
        const names = loaded.certificates.map((c) => c.commonName ?? "?").join(", ");
        fail(
          alias.path,
          `trust store "${loaded.file}" has no certificate with common name "${alias.name}" (it has: ${names || "none"}); fix the alias`,
        );
      }
      selected.push(...found.map((c) => c.pem));
    }
    return selected;
  };
  /** TLS client options; `options` is where keys and trust are written (for errors). */
  const clientTls = (
    t: TlsClient,
    options = childPath(t.path, "options"),
  ): TlsClientOptions | undefined => {
    const out: TlsClientOptions = {};
    if (t.trust && t.trust.length > 0) {
      const selected = trustCertificates(
        t.vault,
        t.trust,
        childPath(options, "trust"),
        `tls client "${t.name}"`,
      );
      if (selected) out.ca = t.trustcacerts ? [...rootCertificates, ...selected] : selected;
    }
    if (t.keys && t.keys.length > 0) {
      const keystore = pickKeystore(
        t.vault,
        t.keys,
        childPath(options, "keys"),
        `tls client "${t.name}"`,
      );
      if (keystore) Object.assign(out, keystore);
    }
    const sni = t.sni?.[0];
    if (sni !== undefined) out.sni = sni;
    if (t.alpn) out.alpn = t.alpn;
    return out;
  };

  // --- kafka ---------------------------------------------------------------------------------
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

  // --- north ---------------------------------------------------------------------------------
  interface NorthDraft {
    proxy: GrpcKafkaProxy;
    listeners: NorthListener[];
    grpcServers: Set<GrpcServer>;
    httpServers: Set<HttpServer>;
  }
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
    for (const route of b.routes) {
      for (const port of route.ports ?? []) {
        if (!b.ports.includes(port)) {
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
      const served = grpcServerServices(g);
      for (const s of served) services.add(s);
      const m = grpcServerMethods(g);
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

  function grpcServerServices(g: GrpcServer): string[] {
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

  function grpcServerMethods(g: GrpcServer): string[] | "all" {
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

  // --- west ----------------------------------------------------------------------------------
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

  // --- the one Kafka cluster -----------------------------------------------------------------
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

  // --- telemetry -----------------------------------------------------------------------------
  let telemetry: TelemetryConfig | undefined;
  if (ns.telemetry) {
    const exporters: TelemetryExporter[] = [];
    for (const e of ns.telemetry.exporters) {
      if (e.type === "stdout") exporters.push({ name: e.name, type: "stdout" });
      else if (e.type === "prometheus")
        exporters.push({ name: e.name, type: "prometheus", endpoints: e.endpoints ?? [] });
      else if (e.otlp?.endpoint) {
        let tls: TlsClientOptions | undefined;
        if (e.otlp.tls) {
          tls = clientTls(
            {
              role: "tls.client",
              name: e.name,
              path: e.path,
              routes: [],
              ...(e.vault ? { vault: e.vault } : {}),
              ...(e.otlp.tls.keys ? { keys: e.otlp.tls.keys } : {}),
              ...(e.otlp.tls.trust ? { trust: e.otlp.tls.trust } : {}),
              ...(e.otlp.tls.trustcacerts !== undefined
                ? { trustcacerts: e.otlp.tls.trustcacerts }
                : {}),
            },
            e.otlp.tls.path,
          );
        }
        exporters.push({
          name: e.name,
          type: "otlp",
          intervalSeconds: e.otlp.intervalSeconds,
          signals: e.otlp.signals,
          endpoint: e.otlp.endpoint,
          ...(e.otlp.authorization !== undefined ? { authorization: e.otlp.authorization } : {}),
          ...(tls ? { tls } : {}),
        });
      }
    }
    telemetry = {
      attributes: ns.telemetry.attributes,
      metrics: ns.telemetry.metrics,
      exporters,
      bindings: ns.telemetry.bindings,
    };
  }

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

async function readText(baseDir: string, file: string): Promise<string | undefined> {
  try {
    return await readFile(resolve(baseDir, file), "utf8");
  } catch {
    return undefined;
  }
}

async function loadStore(
  store: Store,
  use: "keys" | "trust",
  baseDir: string,
  fail: (path: string, message: string) => undefined,
): Promise<LoadedStore | undefined> {
  const file = resolve(baseDir, store.store);
  const noun = use === "keys" ? "keystore" : "trust store";
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch {
    return fail(
      childPath(store.path, "store"),
      `${noun} "${store.store}" does not exist (looked for ${file}); create it${use === "keys" ? " (see examples/grpc.kafka.proxy/README.md)" : ""} or fix the path, which is relative to the config file's directory`,
    );
  }
  if (store.type === "pem") {
    const certificates = pemCertificates(Buffer.from(bytes).toString("utf8"));
    if (certificates.length === 0) {
      // A DER file (PKCS#12 included) starts with a SEQUENCE tag: Zilla's default trust type.
      const binary = bytes[0] === 0x30;
      return fail(
        childPath(store.path, "store"),
        binary
          ? `trust store "${store.store}" is not PEM (it looks like PKCS#12, Zilla's default, which this runtime cannot read as trust); export its certificates with "openssl pkcs12 -in ${store.store} -nokeys -out trust.pem" and use type: pem`
          : `trust store "${store.store}" holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the CA certificates to it`,
      );
    }
    return { kind: "pem", file: store.store, certificates };
  }
  const problem = store.passwordUnresolved ? undefined : pkcs12OpenProblem(bytes, store.password);
  if (problem !== undefined) {
    const wrongPassword = /mac verif|passphrase|password|decrypt/i.test(problem);
    if (wrongPassword && store.password === undefined) {
      return fail(
        childPath(store.path, "password"),
        `keystore "${store.store}" is protected; add its password (e.g. password: \${{env.KEYSTORE_PASSWORD}})`,
      );
    }
    return fail(
      childPath(store.path, wrongPassword ? "password" : "store"),
      wrongPassword
        ? `cannot open keystore "${store.store}" with this password (${problem}); set the keystore's password`
        : `"${store.store}" is not a PKCS#12 keystore this runtime can read (${problem}); recreate it with "openssl pkcs12 -export"`,
    );
  }
  return { kind: "pkcs12", file: store.store, bytes, aliases: pkcs12FriendlyNames(bytes) };
}
