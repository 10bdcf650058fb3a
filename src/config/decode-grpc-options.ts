import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  type Mapping,
  readChoice,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readOptional,
  readString,
  readStringMap,
  report,
} from "./decode.ts";
import type { CatalogSubject, GrpcWhen } from "./schema.ts";
import {
  type Acks,
  type CorrelationHeaders,
  defaultGrpcKafkaOptions,
  type FetchFilter,
  type FetchWith,
  type GrpcKafkaOptions,
  type ProduceWith,
} from "./types.ts";

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
export function readMethodPattern(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): string | undefined {
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

/** The `acks` values a produce route and a kafka-grpc binding accept. */
export const acksNames = ["none", "leader_only", "in_sync_replicas"] as const;

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

/** `correlation.headers`: the header names a binding writes and reads, over the defaults in `into`. */
export function decodeCorrelation(
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
