/**
 * The strict decoder of a zilla.yaml namespace: every mapping is checked against the keys
 * Zilla defines for it (tcp, tls, http, grpc, grpc-kafka, kafka, kafka-grpc bindings;
 * filesystem vaults and catalogs; jwt guards; telemetry) and each binding is decoded into a
 * model per type and kind (options in decode-transport-options.ts, decode-grpc-options.ts
 * and decode-kafka-options.ts, vaults/catalogs/guards in decode-resources.ts, telemetry in
 * decode-telemetry.ts). References between entries are only recorded here (as `Ref`s with
 * their paths); topology.ts checks them and builds the pipelines.
 *
 * Why one file over 500 lines: it is the table of what a zilla.yaml may hold. The model of
 * each binding role, the keys each role takes (`shapes`) and the one switch that maps a role
 * to its decoders are read side by side when a binding type or key is added; the per-key
 * work already lives in the decode-*.ts files.
 */
import type { CompressionCodec } from "../kafka/protocol/compression.ts";
import type { UndecodablePolicy } from "../kafka/undecodable-batches.ts";
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  type Mapping,
  namedEntries,
  namePattern,
  nameRule,
  type Ref,
  readList,
  readListOf,
  readMapping,
  readName,
  readString,
  readStringMap,
  ref,
  report,
} from "./decode.ts";
import {
  decodeCatalogRefs,
  decodeGrpcKafkaOptions,
  decodeGrpcKafkaWith,
  decodeGrpcWhen,
} from "./decode-grpc-options.ts";
import {
  decodeGuard,
  decodeGuarded,
  decodeHttpAuthorization,
  decodeTlsAuthorization,
  type GuardedRef,
  type GuardModel,
} from "./decode-guards.ts";
import {
  decodeKafkaCacheOptions,
  decodeKafkaClientOptions,
  decodeKafkaGrpcOptions,
  decodeKafkaGrpcWhen,
  decodeKafkaGrpcWith,
} from "./decode-kafka-options.ts";
import { decodeCatalog, decodeVault } from "./decode-resources.ts";
import { decodeBindingTelemetry, decodeTelemetry } from "./decode-telemetry.ts";
import {
  decodeHttpOptions,
  decodeTcpOptions,
  decodeTcpWhen,
  decodeTlsOptions,
  portsOfWhen,
  tlsWhenUnsupported,
} from "./decode-transport-options.ts";
import type {
  AccessControl,
  FetchWith,
  GrpcKafkaOptions,
  HttpCredentials,
  KafkaGroupTimings,
  KafkaGrpcOptions,
  ProduceWith,
  SaslOptions,
  TlsVersion,
} from "./types.ts";

interface BindingBase {
  name: string;
  path: string;
  exit?: Ref;
}

interface RouteBase {
  path: string;
  exit?: Ref;
  guarded: GuardedRef[];
}

export interface TcpServer extends BindingBase {
  role: "tcp.server";
  host: string;
  ports: number[];
  routes: Array<RouteBase & { ports?: number[] }>;
}
export interface TcpClient extends BindingBase {
  role: "tcp.client";
  host?: string;
  port?: number;
  routes: RouteBase[];
}
export interface TlsServer extends BindingBase {
  role: "tls.server";
  vault?: Ref;
  keys: Ref[];
  /** CA aliases in the vault's trust store that client certificates must chain to. */
  trust?: Ref[];
  mutual?: "required" | "requested" | "none";
  sni?: string[];
  alpn?: string[];
  /** The x509 guard that reads the client certificate. */
  authorization?: Ref;
  version?: TlsVersion;
  routes: RouteBase[];
}
export interface TlsClient extends BindingBase {
  role: "tls.client";
  vault?: Ref;
  keys?: Ref[];
  trust?: Ref[];
  trustcacerts?: boolean;
  sni?: string[];
  alpn?: string[];
  routes: RouteBase[];
}
export interface HttpServer extends BindingBase {
  role: "http.server";
  versions: string[];
  accessControl?: AccessControl;
  authorization?: { guard: Ref; credentials: HttpCredentials };
  routes: RouteBase[];
}
export interface HttpClient extends BindingBase {
  role: "http.client";
  versions: string[];
  routes: RouteBase[];
}
export interface GrpcWhen {
  path: string;
  method?: string;
  metadata?: Record<string, string>;
}
export interface CatalogSubject {
  catalog: Ref;
  subject: string;
  path: string;
}
export interface GrpcServer extends BindingBase {
  role: "grpc.server";
  catalog: CatalogSubject[];
  routes: Array<RouteBase & { when: GrpcWhen[] }>;
}
export interface GrpcClient extends BindingBase {
  role: "grpc.client";
  routes: Array<RouteBase & { when: GrpcWhen[] }>;
}
export interface GrpcKafkaProxy extends BindingBase {
  role: "grpc-kafka.proxy";
  options: GrpcKafkaOptions;
  routes: Array<RouteBase & { when: GrpcWhen[]; with?: ProduceWith | FetchWith }>;
}
export interface KafkaCacheClient extends BindingBase {
  role: "kafka.cache_client";
  routes: RouteBase[];
}
export interface KafkaCacheServer extends BindingBase {
  role: "kafka.cache_server";
  routes: RouteBase[];
}
export interface KafkaClient extends BindingBase {
  role: "kafka.client";
  servers?: string[];
  sasl?: SaslOptions;
  compression?: CompressionCodec;
  undecodableBatches?: UndecodablePolicy;
  group?: KafkaGroupTimings;
  produceRetryMaxMs?: number;
  routes: RouteBase[];
}
export interface KafkaGrpcWhenModel {
  path: string;
  topic?: string;
  replyTo?: string;
  key?: string;
  headers?: Record<string, string>;
  method?: string;
}
export interface KafkaGrpcRemoteServer extends BindingBase {
  role: "kafka-grpc.remote_server";
  entry?: Ref;
  options: KafkaGrpcOptions;
  routes: Array<
    RouteBase & {
      when: KafkaGrpcWhenModel[];
      with?: { scheme: "http" | "https"; authority: string };
    }
  >;
}
/** A binding whose type or kind was not understood (reported); it still exists by name. */
export interface UnknownBinding extends BindingBase {
  role: "unknown";
  routes: RouteBase[];
}

export type Binding =
  | TcpServer
  | TcpClient
  | TlsServer
  | TlsClient
  | HttpServer
  | HttpClient
  | GrpcServer
  | GrpcClient
  | GrpcKafkaProxy
  | KafkaCacheClient
  | KafkaCacheServer
  | KafkaClient
  | KafkaGrpcRemoteServer
  | UnknownBinding;

export type Role = Binding["role"];

export interface Store {
  path: string;
  store: string;
  type: "pkcs12" | "pem";
  password?: string;
  /** The password is an expression that could not be resolved (reported): do not try it. */
  passwordUnresolved?: boolean;
  /** The environment variables the password was made from (`${{env.NAME}}`), for messages. */
  passwordVariables?: readonly string[];
}

export interface Vault {
  name: string;
  path: string;
  keys?: Store;
  trust?: Store;
  /** Stores written in the file, even if they failed to decode (so no second error follows). */
  declares: { keys: boolean; trust: boolean };
}

export interface Catalog {
  name: string;
  path: string;
  subjects: Map<string, { file: string; path: string }>;
}

export type Guard = GuardModel;

export interface TelemetryExporterModel {
  path: string;
  name: string;
  type: "stdout" | "prometheus" | "otlp";
  vault?: Ref;
  endpoints?: Array<{ scheme: "http"; port: number; path: string }>;
  otlp?: {
    intervalSeconds: number;
    signals: Array<"metrics" | "logs">;
    endpoint?: { protocol: "http"; location: string; metricsPath: string; logsPath: string };
    authorization?: string;
    tls?: { path: string; keys?: Ref[]; trust?: Ref[]; trustcacerts?: boolean };
  };
}

export interface TelemetryModel {
  attributes: Record<string, string>;
  metrics: string[];
  exporters: TelemetryExporterModel[];
  bindings: Record<string, string[]>;
}

export interface Namespace {
  name?: string;
  vaults: Map<string, Vault>;
  catalogs: Map<string, Catalog>;
  guards: Map<string, Guard>;
  bindings: Map<string, Binding>;
  telemetry?: TelemetryModel;
}

/** Binding types this gateway runs, with their kinds. */
export const supportedKinds: Readonly<Record<string, readonly string[]>> = {
  grpc: ["server", "client"],
  "grpc-kafka": ["proxy"],
  http: ["server", "client"],
  kafka: ["cache_client", "cache_server", "client"],
  "kafka-grpc": ["remote_server"],
  tcp: ["server", "client"],
  tls: ["server", "client"],
};

/** Decodes the whole namespace; problems go to `ctx.errors`, the rest is kept. */
export function decodeNamespace(ctx: DecodeContext, root: unknown): Namespace {
  const ns: Namespace = {
    vaults: new Map(),
    catalogs: new Map(),
    guards: new Map(),
    bindings: new Map(),
  };
  if (root === null || root === undefined) {
    report(ctx, "(root)", "the file is empty; write a namespace with name and bindings");
    return ns;
  }
  const m = readMapping(ctx, root, "", {
    keys: ["name", "vaults", "guards", "telemetry", "catalogs", "bindings"],
    required: ["name", "bindings"],
    unsupported: { stores: 'Zilla "stores" are not supported by this gateway; remove them' },
    hints: {
      name: "add the namespace name (it names the consumer group: zilla:<name>-<binding>)",
      bindings: "add the bindings of the gateway",
    },
  });
  if (!m) return ns;
  if (has(m, "name")) {
    const name = readName(ctx, m.name, "name");
    if (name !== undefined && !namePattern.test(name)) report(ctx, "name", `"${name}" ${nameRule}`);
    else ns.name = name;
  }
  for (const [name, value, path] of namedEntries(ctx, m, "vaults")) {
    const vault = decodeVault(ctx, name, value, path);
    if (vault) ns.vaults.set(name, vault);
  }
  for (const [name, value, path] of namedEntries(ctx, m, "catalogs")) {
    const catalog = decodeCatalog(ctx, name, value, path);
    if (catalog) ns.catalogs.set(name, catalog);
  }
  for (const [name, value, path] of namedEntries(ctx, m, "guards")) {
    ns.guards.set(name, decodeGuard(ctx, name, value, path));
  }
  const bindingMetrics: Record<string, string[]> = {};
  for (const [name, value, path] of namedEntries(ctx, m, "bindings")) {
    const binding = decodeBinding(ctx, name, value, path, bindingMetrics);
    ns.bindings.set(name, binding);
  }
  if (has(m, "telemetry")) {
    const telemetry = decodeTelemetry(ctx, m.telemetry, "telemetry");
    if (telemetry) ns.telemetry = { ...telemetry, bindings: bindingMetrics };
  }
  return ns;
}

// ---------------------------------------------------------------------------------------
// bindings

const bindingKeys = [
  "type",
  "kind",
  "vault",
  "catalog",
  "options",
  "routes",
  "telemetry",
  "exit",
  "entry",
];

interface RoleShape {
  keys: readonly string[];
  required?: readonly string[];
  /** Advice when a known binding key is not allowed for this role. */
  notHere?: Readonly<Record<string, string>>;
}

const shapes: Record<Exclude<Role, "unknown">, RoleShape> = {
  "tcp.server": { keys: ["options", "routes", "exit", "telemetry"], required: ["options"] },
  "tcp.client": {
    keys: ["options", "telemetry"],
    notHere: {
      exit: "a tcp client ends a chain and has no exit; remove it",
      routes: "routes on a tcp client are not supported; remove them",
    },
  },
  "tls.server": {
    keys: ["vault", "options", "routes", "exit", "telemetry"],
    required: ["vault", "options"],
  },
  "tls.client": { keys: ["vault", "options", "routes", "exit", "telemetry"] },
  "http.server": { keys: ["options", "routes", "exit", "telemetry"] },
  "http.client": { keys: ["options", "routes", "exit", "telemetry"] },
  "grpc.server": {
    keys: ["catalog", "routes", "exit", "telemetry"],
    notHere: { options: 'a grpc binding takes no "options"; remove them' },
  },
  "grpc.client": {
    keys: ["routes", "exit", "telemetry"],
    notHere: { options: 'a grpc binding takes no "options"; remove them' },
  },
  "grpc-kafka.proxy": {
    keys: ["options", "routes", "telemetry"],
    required: ["routes"],
    notHere: { exit: 'a grpc-kafka proxy takes "exit" on each route, not on the binding; move it' },
  },
  "kafka.cache_client": { keys: ["options", "routes", "exit", "telemetry"] },
  "kafka.cache_server": { keys: ["options", "routes", "exit", "telemetry"] },
  "kafka.client": { keys: ["options", "routes", "exit", "telemetry"] },
  "kafka-grpc.remote_server": {
    keys: ["entry", "options", "routes", "telemetry"],
    required: ["entry", "routes"],
    notHere: {
      exit: 'a kafka-grpc remote_server takes "exit" on each route, not on the binding; move it',
    },
  },
};

function decodeBinding(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
  bindingMetrics: Record<string, string[]>,
): Binding {
  const unknown: UnknownBinding = { role: "unknown", name, path, routes: [] };
  if (!isMapping(value)) {
    report(
      ctx,
      path,
      `must be a mapping with type, kind and options, found ${describeValue(value)}`,
    );
    return unknown;
  }
  const typePath = childPath(path, "type");
  const kindPath = childPath(path, "kind");
  let type: string | undefined;
  let kind: string | undefined;
  if (!has(value, "type")) {
    report(
      ctx,
      typePath,
      `required key "type" is missing; add one of: ${Object.keys(supportedKinds).join(", ")}`,
    );
  } else type = readString(ctx, value.type, typePath);
  if (!has(value, "kind")) {
    const kinds = type ? supportedKinds[type] : undefined;
    report(
      ctx,
      kindPath,
      `required key "kind" is missing; add one of: ${(kinds ?? ["server", "client", "proxy"]).join(", ")}`,
    );
  } else kind = readString(ctx, value.kind, kindPath);
  if (type !== undefined && supportedKinds[type] === undefined) {
    const supported = Object.keys(supportedKinds);
    const guess = supported.find(
      (t) => t !== type && t.replace(/-/g, "") === type?.replace(/[-_]/g, ""),
    );
    report(
      ctx,
      typePath,
      `binding type "${type}" is not supported by this gateway${guess ? `; did you mean "${guess}"?` : ""} (supported: ${supported.join(", ")})`,
    );
    return unknown;
  }
  if (type === undefined || kind === undefined) return unknown;
  const kinds = supportedKinds[type] ?? [];
  if (!kinds.includes(kind)) {
    report(
      ctx,
      kindPath,
      `kind "${kind}" is not supported for a ${type} binding; use ${orList(kinds)}`,
    );
    return unknown;
  }
  const role = `${type}.${kind}` as Exclude<Role, "unknown">;
  const shape = shapes[role];
  const notHere: Record<string, string> = {};
  for (const key of bindingKeys) {
    if (key === "type" || key === "kind" || shape.keys.includes(key)) continue;
    notHere[key] = shape.notHere?.[key] ?? `a ${type} ${kind} binding takes no "${key}"; remove it`;
  }
  const m = readMapping(ctx, value, path, {
    keys: ["type", "kind", ...shape.keys],
    required: shape.required ?? [],
    unsupported: notHere,
    hints: {
      vault: "add the vault that holds the keys",
      options: "add the options",
      routes: "add routes with when, with and exit",
      entry:
        "add the kafka binding that the remote server reads from (e.g. the kafka cache_client)",
    },
  });
  if (!m) return unknown;
  const base = { name, path, ...optionalRef(ctx, m, path, "exit") };
  const options = has(m, "options") ? m.options : undefined;
  const optionsPath = childPath(path, "options");
  if (has(m, "telemetry")) {
    const metrics = decodeBindingTelemetry(ctx, m.telemetry, childPath(path, "telemetry"));
    if (metrics) bindingMetrics[name] = metrics;
  }
  const routesOf = <W>(
    when: ((v: unknown, p: string) => W | undefined) | undefined,
    opts: {
      exitRequired?: boolean;
      withRequired?: boolean;
      withDecoder?: (v: unknown, p: string) => unknown;
    } = {},
  ) => decodeRoutes(ctx, m, path, role, when, opts);

  switch (role) {
    case "tcp.server": {
      const o = decodeTcpOptions(ctx, options, optionsPath, "server");
      return {
        role,
        ...base,
        host: o.host ?? "0.0.0.0",
        ports: o.ports ?? [],
        routes: routesOf((v, p) => decodeTcpWhen(ctx, v, p)).map((r) => ({
          ...r,
          ...portsOfWhen(r.when),
        })),
      };
    }
    case "tcp.client": {
      const o = decodeTcpOptions(ctx, options, optionsPath, "client");
      const port = o.ports?.[0];
      return {
        role,
        ...base,
        ...(o.host !== undefined ? { host: o.host } : {}),
        ...(port !== undefined ? { port } : {}),
        routes: [],
      };
    }
    case "tls.server":
    case "tls.client": {
      const o = decodeTlsOptions(ctx, options, optionsPath, kind as "server" | "client");
      const routes = routesOf(
        (v, p) => readMapping(ctx, v, p, { keys: [], unsupported: tlsWhenUnsupported }),
        {
          withDecoder: (_v, p) =>
            report(
              ctx,
              p,
              'tls route "with" (client certificate match) is not supported; remove it',
            ),
        },
      );
      const vault = optionalRef(ctx, m, path, "vault");
      if (role === "tls.server") {
        const authorization =
          isMapping(options) && has(options, "authorization")
            ? decodeTlsAuthorization(
                ctx,
                options.authorization,
                childPath(optionsPath, "authorization"),
              )
            : undefined;
        return {
          role,
          ...base,
          ...vault,
          ...o,
          ...(authorization ? { authorization } : {}),
          keys: o.keys ?? [],
          routes,
        };
      }
      const { mutual: _mutual, ...clientOptions } = o;
      return { role, ...base, ...vault, ...clientOptions, routes };
    }
    case "http.server":
    case "http.client": {
      const versions = decodeHttpOptions(ctx, options, optionsPath, kind as "server" | "client");
      const authorization =
        role === "http.server" && isMapping(options) && has(options, "authorization")
          ? decodeHttpAuthorization(
              ctx,
              options.authorization,
              childPath(optionsPath, "authorization"),
            )
          : undefined;
      const routes = routesOf(
        (v, p) => {
          const w = readMapping(ctx, v, p, { keys: ["headers"] });
          if (w && has(w, "headers")) readStringMap(ctx, w.headers, childPath(p, "headers"));
          return w;
        },
        {
          withDecoder: (_v, p) =>
            report(ctx, p, 'http route "with" (header overrides) is not supported; remove it'),
        },
      );
      if (role === "http.server") {
        return {
          role,
          ...base,
          versions: versions.versions,
          ...(versions.accessControl ? { accessControl: versions.accessControl } : {}),
          ...(authorization ? { authorization } : {}),
          routes,
        };
      }
      return { role, ...base, versions: versions.versions, routes };
    }
    case "grpc.server":
    case "grpc.client": {
      const routes = routesOf((v, p) => decodeGrpcWhen(ctx, v, p)).map((r) => ({
        ...r,
        when: r.when,
      }));
      if (role === "grpc.client") return { role, ...base, routes };
      const catalog = has(m, "catalog")
        ? decodeCatalogRefs(ctx, m.catalog, childPath(path, "catalog"))
        : [];
      return { role, ...base, catalog, routes };
    }
    case "grpc-kafka.proxy": {
      const opts = decodeGrpcKafkaOptions(ctx, options, optionsPath);
      const routes = routesOf((v, p) => decodeGrpcWhen(ctx, v, p), {
        exitRequired: true,
        withRequired: true,
        withDecoder: (v, p) => decodeGrpcKafkaWith(ctx, v, p),
      });
      return {
        role,
        ...base,
        options: opts,
        routes: routes.map((r) => ({ ...r, with: r.with as ProduceWith | FetchWith | undefined })),
      };
    }
    case "kafka.cache_client":
    case "kafka.cache_server":
    case "kafka.client": {
      if (role === "kafka.client") {
        const o = decodeKafkaClientOptions(ctx, options, optionsPath);
        const routes = routesOf((_v, p) =>
          report(ctx, p, 'a kafka client route takes no "when"; remove it'),
        );
        return { role, ...base, ...o, routes };
      }
      decodeKafkaCacheOptions(ctx, options, optionsPath, role);
      const routes = routesOf((v, p) => {
        const w = readMapping(ctx, v, p, { keys: ["topic"] });
        if (w && has(w, "topic")) readName(ctx, w.topic, childPath(p, "topic"));
        return w;
      });
      return { role, ...base, routes };
    }
    case "kafka-grpc.remote_server": {
      const opts = decodeKafkaGrpcOptions(ctx, options, optionsPath);
      const routes = routesOf((v, p) => decodeKafkaGrpcWhen(ctx, v, p), {
        exitRequired: true,
        withRequired: true,
        withDecoder: (v, p) => decodeKafkaGrpcWith(ctx, v, p),
      });
      return {
        role,
        ...base,
        ...optionalRef(ctx, m, path, "entry"),
        options: opts,
        routes: routes.map((r) => ({
          ...r,
          with: r.with as { scheme: "http" | "https"; authority: string } | undefined,
        })),
      };
    }
  }
}

function withHint(role: Role): string {
  if (role === "grpc-kafka.proxy") return "add with: { capability: produce, topic: <topic> }";
  if (role === "kafka-grpc.remote_server")
    return "add with: { scheme: http, authority: <host:port> }";
  return "add it";
}

function orList(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

function optionalRef<K extends string>(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  key: K,
): Partial<Record<K, Ref>> {
  if (!has(m, key)) return {};
  const r = ref(ctx, m[key], childPath(path, key));
  return r ? ({ [key]: r } as Record<K, Ref>) : {};
}

interface DecodedRoute<W> extends RouteBase {
  when: W[];
  with?: unknown;
}

function decodeRoutes<W>(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  role: Role,
  when: ((v: unknown, p: string) => W | undefined) | undefined,
  opts: {
    exitRequired?: boolean;
    withRequired?: boolean;
    withDecoder?: (v: unknown, p: string) => unknown;
  },
): DecodedRoute<W>[] {
  if (!has(m, "routes")) return [];
  const routesPath = childPath(path, "routes");
  const list = readList(ctx, m.routes, routesPath);
  if (!list) return [];
  const out: DecodedRoute<W>[] = [];
  list.forEach((value, i) => {
    const p = childPath(routesPath, i);
    const keys = ["exit", "when", "guarded", ...(opts.withDecoder ? ["with"] : [])];
    const r = readMapping(ctx, value, p, {
      keys,
      required: [...(opts.exitRequired ? ["exit"] : []), ...(opts.withRequired ? ["with"] : [])],
      unsupported: opts.withDecoder
        ? {}
        : { with: `a ${role.replace(".", " ")} route takes no "with"; remove it` },
      hints: { exit: "add the binding this route leads to", with: withHint(role) },
    });
    if (!r) return;
    const route: DecodedRoute<W> = {
      path: p,
      when: [],
      guarded: [],
      ...optionalRef(ctx, r, p, "exit"),
    };
    if (has(r, "when") && when) {
      route.when = readListOf(ctx, r.when, childPath(p, "when"), when) ?? [];
    }
    if (has(r, "with") && opts.withDecoder) {
      const w = opts.withDecoder(r.with, childPath(p, "with"));
      if (w !== undefined) route.with = w;
    }
    if (has(r, "guarded")) route.guarded = decodeGuarded(ctx, r.guarded, childPath(p, "guarded"));
    out.push(route);
  });
  return out;
}
