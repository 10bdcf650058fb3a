/**
 * Decoders of the kafka and kafka-grpc bindings' `options` and route `when` / `with` items,
 * each checked against the keys Zilla defines and the ones this gateway does not support.
 */
import { type CompressionCodec, compressionCodecs } from "../kafka/protocol/compression.ts";
import { type UndecodablePolicy, undecodablePolicies } from "../kafka/undecodable-batches.ts";
import { childPath } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  readChoice,
  readListOf,
  readMapping,
  readName,
  readOptional,
  readString,
  readStringList,
  readStringMap,
  report,
} from "./decode.ts";
import { acksNames, decodeCorrelation, readMethodPattern } from "./decode-grpc-options.ts";
import {
  decodeKafkaClientExtensions,
  type KafkaClientExtensions,
  kafkaClientExtensionKeys,
} from "./decode-kafka-client-extensions.ts";
import {
  decodeKafkaGrpcExtensions,
  kafkaGrpcExtensionKeys,
} from "./decode-kafka-grpc-extensions.ts";
import type { KafkaGrpcWhenModel, Role } from "./schema.ts";
import {
  type Acks,
  defaultKafkaGrpcOptions,
  type KafkaGrpcOptions,
  type SaslOptions,
} from "./types.ts";

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
