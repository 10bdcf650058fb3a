/**
 * The kafka-grpc options this gateway adds to Zilla's (docs/idempotency.md, "Configuration"):
 * under `idempotency`, next to Zilla's `metadata`, the store, the window and the changelog;
 * `max-message-bytes` beside it. Zilla rejects these keys; a config that uses them runs only
 * here.
 */
import { childPath } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  type Mapping,
  readChoice,
  readInteger,
  readMapping,
  readName,
  readStringMap,
  report,
} from "./decode.ts";
import type { KafkaGrpcOptions } from "./types.ts";

/** Keys of kafka-grpc `options` besides Zilla's. */
export const kafkaGrpcExtensionKeys = ["max-message-bytes"] as const;

const mib = 1024 * 1024;

/** Reads `idempotency` (Zilla's `metadata` and ours) and `max-message-bytes` into `options`. */
export function decodeKafkaGrpcExtensions(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  options: KafkaGrpcOptions,
): void {
  if (has(m, "idempotency")) {
    decodeIdempotency(ctx, m.idempotency, childPath(path, "idempotency"), options);
  }
  if (has(m, "max-message-bytes")) {
    const bytes = readInteger(ctx, m["max-message-bytes"], childPath(path, "max-message-bytes"), {
      min: 1,
      max: 1024 * mib,
    });
    if (bytes !== undefined) options.maxMessageBytes = bytes;
  }
}

function decodeIdempotency(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  options: KafkaGrpcOptions,
): void {
  const m = readMapping(ctx, value, path, {
    keys: ["metadata", "store", "window-ms", "changelog"],
  });
  if (!m) return;
  if (has(m, "metadata")) {
    const metadata = readName(ctx, m.metadata, childPath(path, "metadata"));
    if (metadata !== undefined) options.idempotency.metadata = metadata.toLowerCase();
  }
  if (has(m, "store")) {
    const store = readChoice(ctx, m.store, childPath(path, "store"), ["kafka", "memory"] as const);
    if (store !== undefined) options.idempotencyStore = store;
  }
  if (has(m, "window-ms")) {
    const windowMs = readInteger(ctx, m["window-ms"], childPath(path, "window-ms"), {
      min: 0,
      max: 7 * 24 * 3_600_000,
    });
    if (windowMs !== undefined) options.idempotencyWindowMs = windowMs;
  }
  if (has(m, "changelog")) decodeChangelog(ctx, m.changelog, childPath(path, "changelog"), options);
}

function decodeChangelog(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  options: KafkaGrpcOptions,
): void {
  const m = readMapping(ctx, value, path, { keys: ["topics", "reply-max-bytes"] });
  if (!m) return;
  if (has(m, "topics")) {
    const tp = childPath(path, "topics");
    const topics = readStringMap(ctx, m.topics, tp);
    for (const [requestTopic, changelog] of Object.entries(topics ?? {})) {
      if (!/^[a-zA-Z0-9._-]{1,249}$/.test(changelog) || changelog === "." || changelog === "..") {
        report(
          ctx,
          childPath(tp, requestTopic),
          `"${changelog}" is not a Kafka topic name (letters, digits, ".", "_", "-"; at most 249)`,
        );
      } else options.changelogTopics[requestTopic] = changelog;
    }
  }
  if (has(m, "reply-max-bytes")) {
    const bytes = readInteger(ctx, m["reply-max-bytes"], childPath(path, "reply-max-bytes"), {
      min: 0,
      max: 64 * mib,
    });
    if (bytes !== undefined) options.replayMaxBytes = bytes;
  }
}
