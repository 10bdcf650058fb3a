/**
 * Decoders of binding `options` and route `when` / `with` items, per binding type, each
 * checked against the keys Zilla defines (and the ones this gateway does not support).
 */
import { type CompressionCodec, compressionCodecs } from "../kafka/protocol/compression.ts";
import { type UndecodablePolicy, undecodablePolicies } from "../kafka/undecodable-batches.ts";
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  type Mapping,
  type Ref,
  readBoolean,
  readChoice,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readOptional,
  readString,
  readStringList,
  readStringMap,
  refs,
  report,
} from "./decode.ts";
import {
  decodeKafkaClientExtensions,
  type KafkaClientExtensions,
  kafkaClientExtensionKeys,
} from "./decode-kafka-client-extensions.ts";
import {
  decodeKafkaGrpcExtensions,
  kafkaGrpcExtensionKeys,
} from "./decode-kafka-grpc-extensions.ts";
import type { CatalogSubject, GrpcWhen, KafkaGrpcWhenModel, Role } from "./schema.ts";
import {
  type AccessControl,
  type Acks,
  type CorrelationHeaders,
  defaultGrpcKafkaOptions,
  defaultKafkaGrpcOptions,
  type FetchFilter,
  type FetchWith,
  type GrpcKafkaOptions,
  type KafkaGrpcOptions,
  type ProduceWith,
  type SaslOptions,
  type TlsVersion,
} from "./types.ts";

// ---------------------------------------------------------------------------------------
// tcp

/** tcp `options`: host and port(s); a client connects to one port. */
export function decodeTcpOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): { host?: string; ports?: number[] } {
  if (value === undefined) return {};
  const m = readMapping(ctx, value, path, {
    keys: ["host", "port"],
    required: kind === "server" ? ["port"] : [],
    hints: { port: "add the port (a number, a list, or a range such as 7151-7153)" },
  });
  if (!m) return {};
  const out: { host?: string; ports?: number[] } = {};
  readOptional(ctx, m, path, "host", readName, out, "host");
  if (has(m, "port")) {
    const portPath = childPath(path, "port");
    if (kind === "client") {
      const port = readInteger(ctx, m.port, portPath, { min: 1, max: 65535 });
      if (port !== undefined) out.ports = [port];
    } else {
      const ports = readPorts(ctx, m.port, portPath);
      if (ports) {
        const seen = new Set<number>();
        for (const port of ports) {
          if (seen.has(port) && port !== 0) {
            report(ctx, portPath, `port ${port} is listed more than once; list it once`);
          }
          seen.add(port);
        }
        out.ports = ports;
      }
    }
  }
  if (kind === "client" && has(m, "host") !== has(m, "port")) {
    report(ctx, path, "a tcp client needs both host and port, or neither; add the missing one");
  }
  return out;
}

const maxPortRange = 1024;

/** A port, a "7151-7153" range, or a list of either, as Zilla's tcp binding accepts. */
export function readPorts(ctx: DecodeContext, value: unknown, path: string): number[] | undefined {
  if (Array.isArray(value)) {
    const out: number[] = [];
    value.forEach((v, i) => {
      const ports = readPortItem(ctx, v, childPath(path, i));
      if (ports) out.push(...ports);
    });
    return out;
  }
  return readPortItem(ctx, value, path);
}

function readPortItem(ctx: DecodeContext, value: unknown, path: string): number[] | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (typeof value === "string") {
    const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value);
    if (range) {
      const from = Number(range[1]);
      const to = Number(range[2]);
      if (from > to || to > 65535 || from < 1) {
        return report(
          ctx,
          path,
          `"${value}" is not a valid port range; write it as low-high within 1-65535`,
        );
      }
      if (to - from + 1 > maxPortRange) {
        return report(
          ctx,
          path,
          `"${value}" spans more than ${maxPortRange} ports; list fewer ports`,
        );
      }
      return Array.from({ length: to - from + 1 }, (_, i) => from + i);
    }
    if (/^\s*\d+\s*$/.test(value)) {
      const port = Number(value);
      if (port > 65535) return report(ctx, path, `must be between 0 and 65535, found ${port}`);
      return [port];
    }
    return report(
      ctx,
      path,
      `must be a port number or a range such as 7151-7153, found "${value}"`,
    );
  }
  const port = readInteger(ctx, value, path, { min: 0, max: 65535 });
  return port === undefined ? undefined : [port];
}

/** A tcp route condition: the port(s) it takes. */
export function decodeTcpWhen(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): { ports?: number[] } | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["port"],
    unsupported: {
      cidr: 'routing by "cidr" is not supported by this gateway; remove it (and filter addresses in front of the gateway)',
      authority: 'routing by "authority" on tcp is not supported by this gateway; route by port',
    },
  });
  if (!m) return undefined;
  if (!has(m, "port")) return {};
  const ports = readPorts(ctx, m.port, childPath(path, "port"));
  return ports ? { ports } : undefined;
}

/** The ports a tcp route takes; absent = any port. */
export function portsOfWhen(when: Array<{ ports?: number[] }>): { ports?: number[] } {
  if (when.length === 0 || when.some((w) => w.ports === undefined)) return {};
  return { ports: when.flatMap((w) => w.ports ?? []) };
}

// ---------------------------------------------------------------------------------------
// tls

export const tlsWhenUnsupported: Record<string, string> = Object.fromEntries(
  ["authority", "alpn", "port", "trust", "mutual"].map((k) => [
    k,
    `tls routing by "${k}" is not supported by this gateway; use options.sni / options.alpn and a single exit`,
  ]),
);

/** tls `options`: vault key and trust aliases, sni, alpn; on a server, client certificates and the lowest version. */
export function decodeTlsOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): {
  keys?: Ref[];
  trust?: Ref[];
  trustcacerts?: boolean;
  mutual?: "required" | "requested" | "none";
  sni?: string[];
  alpn?: string[];
  version?: TlsVersion;
} {
  if (value === undefined) return {};
  const serverOnly = kind === "server";
  const m = readMapping(ctx, value, path, {
    keys: serverOnly
      ? ["keys", "trust", "mutual", "sni", "alpn", "authorization", "version"]
      : ["keys", "trust", "trustcacerts", "sni", "alpn"],
    required: serverOnly ? ["keys"] : [],
    unsupported: {
      ...(serverOnly
        ? {}
        : {
            version:
              'choosing the TLS "version" of a tls client is not supported by this gateway; remove it (TLS 1.2 and 1.3 are accepted)',
          }),
      signers: 'tls "signers" are not supported by this gateway; use "keys"',
      ...(serverOnly
        ? {
            trustcacerts:
              'a tls server trusts only the CAs listed under "trust" for client certificates; remove trustcacerts',
          }
        : {
            mutual: 'a tls client takes no "mutual"; give it "keys" for a client certificate',
            authorization:
              'a tls client takes no "authorization"; put it on the tls server that reads client certificates',
          }),
    },
    hints: { keys: "add the aliases of the server keys in the vault, e.g. [localhost]" },
  });
  if (!m) return {};
  const out: ReturnType<typeof decodeTlsOptions> = {};
  readOptional(ctx, m, path, "keys", refs, out, "keys");
  readOptional(ctx, m, path, "trust", refs, out, "trust");
  readOptional(ctx, m, path, "trustcacerts", readBoolean, out, "trustcacerts");
  if (has(m, "sni")) {
    const sni = readStringList(ctx, m.sni, childPath(path, "sni"));
    if (sni) out.sni = sni;
    if (sni && kind === "client" && sni.length > 1) {
      report(ctx, childPath(path, "sni"), "a tls client sends one server name; list one");
    }
  }
  readOptional(ctx, m, path, "alpn", readStringList, out, "alpn");
  // The lowest version accepted: TLSv1.2 takes 1.2 and 1.3, TLSv1.3 takes 1.3 only.
  readOptional(
    ctx,
    m,
    path,
    "version",
    (c, v, p) => readChoice<TlsVersion>(c, v, p, ["TLSv1.2", "TLSv1.3"]),
    out,
    "version",
  );
  if (has(m, "mutual")) {
    const mp = childPath(path, "mutual");
    const mutual = readChoice(ctx, m.mutual, mp, ["required", "requested", "none"] as const);
    if (mutual !== undefined) out.mutual = mutual;
    if (mutual === "none" && out.trust?.length) {
      report(
        ctx,
        mp,
        'mutual: none asks for no client certificate, so "trust" would go unused; remove one of them',
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// http

const httpVersions = ["http/1.1", "h2"] as const;

/** http `options`: versions (default both) and, on a server, access-control. */
export function decodeHttpOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): { versions: string[]; accessControl?: AccessControl } {
  const defaults = { versions: [...httpVersions] as string[] };
  if (value === undefined) return defaults;
  const unsupported: Record<string, string> = {
    overrides: 'http header "overrides" are not supported by this gateway; remove them',
    requests: 'http "requests" validation is not supported by this gateway; remove it',
  };
  if (kind === "client") {
    unsupported["access-control"] = 'an http client takes no "access-control"; remove it';
    unsupported.authorization =
      'an http client takes no "authorization"; credentials for the upstream travel as request metadata';
  }
  const m = readMapping(ctx, value, path, {
    keys: kind === "server" ? ["versions", "access-control", "authorization"] : ["versions"],
    unsupported,
  });
  if (!m) return defaults;
  const out: { versions: string[]; accessControl?: AccessControl } = { ...defaults };
  if (has(m, "versions")) {
    const versions = readListOf(ctx, m.versions, childPath(path, "versions"), (v, p) =>
      readChoice(ctx, v, p, httpVersions),
    );
    if (versions) out.versions = versions;
  }
  readOptional(ctx, m, path, "access-control", decodeAccessControl, out, "accessControl");
  return out;
}

function decodeAccessControl(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): AccessControl | undefined {
  const m = readMapping(ctx, value, path, { keys: ["policy", "allow", "max-age", "expose"] });
  if (!m) return undefined;
  const policy = has(m, "policy")
    ? readChoice(ctx, m.policy, childPath(path, "policy"), ["same-origin", "cross-origin"] as const)
    : "same-origin";
  if (policy === undefined) return undefined;
  const ac: AccessControl = { policy };
  if (policy === "same-origin") {
    for (const key of ["allow", "max-age", "expose"]) {
      if (has(m, key)) {
        report(
          ctx,
          childPath(path, key),
          `"${key}" applies only to policy: cross-origin; remove it or set policy: cross-origin`,
        );
      }
    }
    return ac;
  }
  if (has(m, "allow")) {
    const ap = childPath(path, "allow");
    const a = readMapping(ctx, m.allow, ap, {
      keys: ["origins", "methods", "headers", "credentials"],
    });
    if (a) {
      const allow: NonNullable<AccessControl["allow"]> = {};
      for (const key of ["origins", "methods", "headers"] as const) {
        if (!has(a, key)) continue;
        const list = readStringList(ctx, a[key], childPath(ap, key));
        if (list) allow[key] = list;
      }
      readOptional(ctx, a, ap, "credentials", readBoolean, allow, "credentials");
      ac.allow = allow;
    }
  }
  readOptional(
    ctx,
    m,
    path,
    "max-age",
    (c, v, p) => readInteger(c, v, p, { min: 0 }),
    ac,
    "maxAgeSeconds",
  );
  if (has(m, "expose")) {
    const ep = childPath(path, "expose");
    const e = readMapping(ctx, m.expose, ep, { keys: ["headers"] });
    if (e) {
      ac.expose = {};
      if (has(e, "headers")) {
        const headers = readStringList(ctx, e.headers, childPath(ep, "headers"));
        if (headers) ac.expose.headers = headers;
      }
    }
  }
  return ac;
}

// ---------------------------------------------------------------------------------------
// grpc, grpc-kafka

/** A grpc server's `catalog`: catalog name → subjects. */
export function decodeCatalogRefs(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): CatalogSubject[] {
  if (!isMapping(value)) {
    report(
      ctx,
      path,
      `must be a mapping of catalog names to subjects, found ${describeValue(value)}`,
    );
    return [];
  }
  const out: CatalogSubject[] = [];
  for (const [catalog, list] of Object.entries(value)) {
    const cp = childPath(path, catalog);
    readListOf(ctx, list, cp, (v, p) => {
      const m = readMapping(ctx, v, p, {
        keys: ["subject", "version"],
        required: ["subject"],
        unsupported: {
          id: 'schema "id" applies to registry catalogs; name the proto with "subject"',
          strategy: 'schema "strategy" applies to registry catalogs; name the proto with "subject"',
        },
        hints: { subject: "add the subject that names the .proto file" },
      });
      if (!m) return undefined;
      if (has(m, "version")) readString(ctx, m.version, childPath(p, "version"));
      const subject = has(m, "subject")
        ? readName(ctx, m.subject, childPath(p, "subject"))
        : undefined;
      if (subject !== undefined) {
        out.push({ catalog: { name: catalog, path: cp }, subject, path: childPath(p, "subject") });
      }
      return subject;
    });
  }
  return out;
}

/** A grpc route condition: method pattern and metadata. */
export function decodeGrpcWhen(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): GrpcWhen | undefined {
  const m = readMapping(ctx, value, path, { keys: ["method", "metadata"] });
  if (!m) return undefined;
  const when: GrpcWhen = { path };
  readOptional(ctx, m, path, "method", readMethodPattern, when, "method");
  readOptional(ctx, m, path, "metadata", decodeMetadata, when, "metadata");
  return when;
}

/** "package.Service/Method" or "package.Service/*" (checked against gen/ later). */
function readMethodPattern(ctx: DecodeContext, value: unknown, path: string): string | undefined {
  const s = readName(ctx, value, path);
  if (s === undefined) return undefined;
  if (!/^[^/\s]+\/[^/\s]+$/.test(s)) {
    return report(ctx, path, `"${s}" must be "package.Service/Method" or "package.Service/*"`);
  }
  return s;
}

/** Metadata values are text, or `{ base64 }` for bytes (kept as base64 for "-bin" names). */
function decodeMetadata(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): Record<string, string> | undefined {
  if (!isMapping(value)) {
    return report(
      ctx,
      path,
      `must be a mapping of metadata names to values, found ${describeValue(value)}`,
    );
  }
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    const p = childPath(path, name);
    const key = name.toLowerCase();
    if (isMapping(v)) {
      const m = readMapping(ctx, v, p, { keys: ["base64"], required: ["base64"] });
      if (!m || !has(m, "base64")) continue;
      const b64 = readString(ctx, m.base64, childPath(p, "base64"));
      if (b64 === undefined) continue;
      if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64)) {
        report(ctx, childPath(p, "base64"), "is not base64; write the value's bytes in base64");
        continue;
      }
      const bytes = Buffer.from(b64, "base64");
      // Binary ("-bin") metadata travels base64-encoded, so it is matched in that form.
      out[key] = key.endsWith("-bin") ? bytes.toString("base64") : bytes.toString("utf8");
    } else {
      const s = readString(ctx, v, p);
      if (s !== undefined) out[key] = s;
    }
  }
  return out;
}

const acksNames = ["none", "leader_only", "in_sync_replicas"] as const;

/** A grpc-kafka route `with`: produce or fetch. */
export function decodeGrpcKafkaWith(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): ProduceWith | FetchWith | undefined {
  if (!isMapping(value))
    return report(
      ctx,
      path,
      `must be a mapping with capability and topic, found ${describeValue(value)}`,
    );
  const capPath = childPath(path, "capability");
  if (!has(value, "capability")) {
    report(
      ctx,
      capPath,
      'required key "capability" is missing; add capability: produce or capability: fetch',
    );
    readMapping(ctx, value, path, {
      keys: ["capability", "topic", "acks", "key", "overrides", "reply-to", "filters"],
    });
    return undefined;
  }
  const capability = readChoice(ctx, value.capability, capPath, ["produce", "fetch"] as const);
  if (capability === undefined) return undefined;
  if (capability === "produce") {
    const m = readMapping(ctx, value, path, {
      keys: ["capability", "topic", "acks", "key", "overrides", "reply-to"],
      required: ["topic"],
      unsupported: { filters: '"filters" apply to capability: fetch; remove them' },
      hints: { topic: "add the Kafka topic the requests are produced to" },
    });
    if (!m) return undefined;
    const topic = has(m, "topic") ? readName(ctx, m.topic, childPath(path, "topic")) : undefined;
    const produce: ProduceWith = { capability, topic: topic ?? "", acks: "in_sync_replicas" };
    readOptional(
      ctx,
      m,
      path,
      "acks",
      (c, v, p) => readChoice<Acks>(c, v, p, acksNames),
      produce,
      "acks",
    );
    readOptional(ctx, m, path, "key", readString, produce, "key");
    readOptional(ctx, m, path, "overrides", readStringMap, produce, "overrides");
    readOptional(ctx, m, path, "reply-to", readName, produce, "replyTo");
    return topic === undefined ? undefined : produce;
  }
  const m = readMapping(ctx, value, path, {
    keys: ["capability", "topic", "filters"],
    required: ["topic"],
    unsupported: Object.fromEntries(
      ["acks", "key", "overrides", "reply-to"].map((k) => [
        k,
        `"${k}" applies to capability: produce; remove it`,
      ]),
    ),
    hints: { topic: "add the Kafka topic the stream is fetched from" },
  });
  if (!m) return undefined;
  const topic = has(m, "topic") ? readName(ctx, m.topic, childPath(path, "topic")) : undefined;
  const fetch: FetchWith = { capability, topic: topic ?? "" };
  if (has(m, "filters")) {
    const filters = readListOf(ctx, m.filters, childPath(path, "filters"), (v, p) => {
      const f = readMapping(ctx, v, p, { keys: ["key", "headers"] });
      if (!f) return undefined;
      const filter: FetchFilter = {};
      readOptional(ctx, f, p, "key", readString, filter, "key");
      readOptional(ctx, f, p, "headers", readStringMap, filter, "headers");
      return filter;
    });
    if (filters) fetch.filters = filters;
  }
  return topic === undefined ? undefined : fetch;
}

/**
 * grpc-kafka's `idempotency` and `correlation` options, in that order (kafka-grpc reads its
 * wider `idempotency` in decode-kafka-grpc-extensions.ts).
 */
function decodeIdempotencyAndCorrelation(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  options: { idempotency: { metadata: string }; correlation: { headers: CorrelationHeaders } },
): void {
  if (has(m, "idempotency"))
    decodeIdempotency(ctx, m.idempotency, childPath(path, "idempotency"), options.idempotency);
  if (has(m, "correlation"))
    decodeCorrelation(
      ctx,
      m.correlation,
      childPath(path, "correlation"),
      options.correlation.headers,
    );
}

function decodeCorrelation(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  into: CorrelationHeaders,
): void {
  const m = readMapping(ctx, value, path, { keys: ["headers"], required: ["headers"] });
  if (!m || !has(m, "headers")) return;
  const hp = childPath(path, "headers");
  const h = readMapping(ctx, m.headers, hp, {
    keys: ["service", "method", "correlation-id", "reply-to"],
  });
  if (!h) return;
  const names: Array<[string, keyof CorrelationHeaders]> = [
    ["service", "service"],
    ["method", "method"],
    ["correlation-id", "correlationId"],
    ["reply-to", "replyTo"],
  ];
  for (const [key, field] of names) {
    if (!has(h, key)) continue;
    const name = readName(ctx, h[key], childPath(hp, key));
    if (name !== undefined) into[field] = name;
  }
}

function decodeIdempotency(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  into: { metadata: string },
): void {
  const m = readMapping(ctx, value, path, { keys: ["metadata"] });
  if (!m || !has(m, "metadata")) return;
  const metadata = readName(ctx, m.metadata, childPath(path, "metadata"));
  if (metadata !== undefined) into.metadata = metadata.toLowerCase();
}

/** grpc-kafka `options` over the defaults. */
export function decodeGrpcKafkaOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): GrpcKafkaOptions {
  const options = defaultGrpcKafkaOptions();
  if (value === undefined) return options;
  const m = readMapping(ctx, value, path, { keys: ["idempotency", "reliability", "correlation"] });
  if (!m) return options;
  decodeIdempotencyAndCorrelation(ctx, m, path, options);
  if (has(m, "reliability")) {
    const rp = childPath(path, "reliability");
    const r = readMapping(ctx, m.reliability, rp, { keys: ["field", "metadata"] });
    if (r && has(r, "field")) {
      const field = readInteger(ctx, r.field, childPath(rp, "field"), { min: 1, max: 536870911 });
      if (field !== undefined) options.reliability.field = field;
    }
    if (r && has(r, "metadata")) {
      const metadata = readName(ctx, r.metadata, childPath(rp, "metadata"));
      if (metadata !== undefined) options.reliability.metadata = metadata.toLowerCase();
    }
  }
  return options;
}

// ---------------------------------------------------------------------------------------
// kafka, kafka-grpc

/** What the kafka client `options` give. */
interface KafkaClientOptions extends KafkaClientExtensions {
  servers?: string[];
  sasl?: SaslOptions;
  compression?: CompressionCodec;
  undecodableBatches?: UndecodablePolicy;
}

/** kafka client `options`: servers, SASL, and the gateway's compression and undecodable-batch policy. */
export function decodeKafkaClientOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): KafkaClientOptions {
  if (value === undefined) return {};
  const m = readMapping(ctx, value, path, {
    keys: ["servers", "sasl", "compression", "undecodable-batches", ...kafkaClientExtensionKeys],
    unsupported: {
      authorization:
        'kafka "authorization" is not supported by this gateway; give credentials under options.sasl (mechanism, username, password)',
    },
  });
  if (!m) return {};
  // Extensions: group timings and the produce retry maximum (docs/kafka-client.md).
  const out: KafkaClientOptions = decodeKafkaClientExtensions(ctx, m, path);
  // Extensions: Zilla's kafka client has neither (see docs/compression.md).
  if (has(m, "compression")) {
    const codec = readChoice(ctx, m.compression, childPath(path, "compression"), compressionCodecs);
    if (codec) out.compression = codec;
  }
  if (has(m, "undecodable-batches")) {
    const p = childPath(path, "undecodable-batches");
    const policy = readChoice(ctx, m["undecodable-batches"], p, undecodablePolicies);
    if (policy) out.undecodableBatches = policy;
  }
  if (has(m, "servers")) {
    const servers = readListOf(ctx, m.servers, childPath(path, "servers"), (v, p) => {
      const s = readName(ctx, v, p);
      if (s === undefined) return undefined;
      if (!/^[^:]+:\d+$/.test(s.trim()))
        return report(ctx, p, `"${s}" must be host:port, e.g. localhost:9092`);
      return s.trim();
    });
    if (servers) out.servers = servers;
  }
  if (has(m, "sasl")) {
    const sp = childPath(path, "sasl");
    const s = readMapping(ctx, m.sasl, sp, {
      keys: ["mechanism", "username", "password"],
      required: ["mechanism", "username", "password"],
    });
    if (s) {
      const mpath = childPath(sp, "mechanism");
      let mechanism: SaslOptions["mechanism"] | undefined;
      if (has(s, "mechanism")) {
        const written = readChoice(ctx, s.mechanism, mpath, [
          "plain",
          "scram-sha-256",
          "scram-sha-512",
          "scram-sha-1",
        ]);
        if (written === "scram-sha-1") {
          report(
            ctx,
            mpath,
            "scram-sha-1 is not supported by this gateway; use scram-sha-256 or scram-sha-512",
          );
        } else mechanism = written;
      }
      const username = has(s, "username")
        ? readString(ctx, s.username, childPath(sp, "username"))
        : undefined;
      const password = has(s, "password")
        ? readString(ctx, s.password, childPath(sp, "password"))
        : undefined;
      if (mechanism && username !== undefined && password !== undefined) {
        out.sasl = { mechanism, username, password };
      }
    }
  }
  return out;
}

/** kafka cache_client / cache_server `options`: checked, not used. */
export function decodeKafkaCacheOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  role: Role,
): void {
  if (value === undefined) return;
  const server = role === "kafka.cache_server";
  const m = readMapping(ctx, value, path, { keys: server ? ["bootstrap", "topics"] : ["topics"] });
  if (!m) return;
  if (has(m, "bootstrap")) readStringList(ctx, m.bootstrap, childPath(path, "bootstrap"));
  if (has(m, "topics")) {
    readListOf(ctx, m.topics, childPath(path, "topics"), (v, p) => {
      const unsupported = Object.fromEntries(
        ["key", "value", "transforms", "deltaType"].map((k) => [
          k,
          `topic "${k}" (validation and transforms) is not supported by this gateway; remove it`,
        ]),
      );
      const t = readMapping(ctx, v, p, {
        keys: server ? ["name", "defaultOffset"] : ["name"],
        unsupported,
      });
      if (!t) return undefined;
      if (has(t, "name")) readName(ctx, t.name, childPath(p, "name"));
      if (has(t, "defaultOffset"))
        readChoice(ctx, t.defaultOffset, childPath(p, "defaultOffset"), ["live", "historical"]);
      return t;
    });
  }
}

/** kafka-grpc `options` over the defaults. */
export function decodeKafkaGrpcOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): KafkaGrpcOptions {
  const options = defaultKafkaGrpcOptions();
  if (value === undefined) return options;
  const m = readMapping(ctx, value, path, {
    keys: ["acks", "idempotency", "correlation", ...kafkaGrpcExtensionKeys],
  });
  if (!m) return options;
  readOptional(
    ctx,
    m,
    path,
    "acks",
    (c, v, p) => readChoice<Acks>(c, v, p, acksNames),
    options,
    "acks",
  );
  // The idempotency mapping has this gateway's own keys next to Zilla's `metadata`.
  if (has(m, "correlation"))
    decodeCorrelation(
      ctx,
      m.correlation,
      childPath(path, "correlation"),
      options.correlation.headers,
    );
  decodeKafkaGrpcExtensions(ctx, m, path, options);
  return options;
}

/** A kafka-grpc route condition: topic, reply-to, key, headers, method. */
export function decodeKafkaGrpcWhen(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): KafkaGrpcWhenModel | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["topic", "reply-to", "key", "headers", "method"],
    required: ["topic", "reply-to"],
    hints: {
      topic: "add the request topic to consume",
      "reply-to": "add the reply topic (requests name it in their zilla:reply-to header)",
    },
  });
  if (!m) return undefined;
  const when: KafkaGrpcWhenModel = { path };
  readOptional(ctx, m, path, "topic", readName, when, "topic");
  readOptional(ctx, m, path, "reply-to", readName, when, "replyTo");
  readOptional(ctx, m, path, "key", readString, when, "key");
  readOptional(ctx, m, path, "headers", readStringMap, when, "headers");
  readOptional(ctx, m, path, "method", readMethodPattern, when, "method");
  return when;
}

/** A kafka-grpc route `with`: the upstream scheme and authority. */
export function decodeKafkaGrpcWith(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): { scheme: "http" | "https"; authority: string } | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["scheme", "authority"],
    required: ["scheme", "authority"],
    hints: { scheme: "add scheme: http (or https)", authority: "add the upstream's host:port" },
  });
  if (!m) return undefined;
  const scheme = has(m, "scheme")
    ? readChoice(ctx, m.scheme, childPath(path, "scheme"), ["http", "https"] as const)
    : undefined;
  let authority: string | undefined;
  if (has(m, "authority")) {
    const ap = childPath(path, "authority");
    authority = readName(ctx, m.authority, ap);
    if (authority !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):\d{1,5}$/.test(authority)) {
      authority = report(ctx, ap, `"${authority}" must be host:port, e.g. localhost:50051`);
    }
  }
  return scheme && authority ? { scheme, authority } : undefined;
}
