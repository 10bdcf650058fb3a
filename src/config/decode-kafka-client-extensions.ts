/**
 * The kafka client options this gateway adds to Zilla's (docs/kafka-client.md): `group`,
 * the consumer-group timings of west's members, and `produce`, how long produced records
 * are retried. Zilla rejects these keys; a config that uses them runs only here.
 */
import { childPath } from "./config-error.ts";
import { type DecodeContext, has, type Mapping, readInteger, readMapping } from "./decode.ts";
import type { KafkaGroupTimings } from "./types.ts";

/** Keys of kafka client `options` besides Zilla's. */
export const kafkaClientExtensionKeys = ["group", "produce"] as const;

export interface KafkaClientExtensions {
  group?: KafkaGroupTimings;
  produceRetryMaxMs?: number;
}

const hourMs = 3_600_000;

/** Reads `group` and `produce` from kafka client `options`. */
export function decodeKafkaClientExtensions(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
): KafkaClientExtensions {
  const out: KafkaClientExtensions = {};
  if (has(m, "group")) {
    const group = decodeGroup(ctx, m.group, childPath(path, "group"));
    if (group) out.group = group;
  }
  if (has(m, "produce")) {
    const pp = childPath(path, "produce");
    const p = readMapping(ctx, m.produce, pp, { keys: ["retry-max-ms"] });
    if (p && has(p, "retry-max-ms")) {
      const ms = readInteger(ctx, p["retry-max-ms"], childPath(pp, "retry-max-ms"), {
        min: 0,
        max: 24 * hourMs,
      });
      if (ms !== undefined) out.produceRetryMaxMs = ms;
    }
  }
  return out;
}

/** `group`: each timing in milliseconds, within what Kafka brokers accept. */
function decodeGroup(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): KafkaGroupTimings | undefined {
  const m = readMapping(ctx, value, path, {
    keys: [
      "session-timeout-ms",
      "heartbeat-interval-ms",
      "rebalance-timeout-ms",
      "unready-after-ms",
    ],
  });
  if (!m) return undefined;
  const out: KafkaGroupTimings = {};
  const read = (key: string, min: number, max: number): number | undefined =>
    has(m, key) ? readInteger(ctx, m[key], childPath(path, key), { min, max }) : undefined;
  const session = read("session-timeout-ms", 1_000, hourMs);
  if (session !== undefined) out.sessionTimeoutMs = session;
  const heartbeat = read("heartbeat-interval-ms", 100, hourMs);
  if (heartbeat !== undefined) out.heartbeatIntervalMs = heartbeat;
  const rebalance = read("rebalance-timeout-ms", 1_000, 24 * hourMs);
  if (rebalance !== undefined) out.rebalanceTimeoutMs = rebalance;
  const unready = read("unready-after-ms", 0, 24 * hourMs);
  if (unready !== undefined) out.unreadyAfterMs = unready;
  return out;
}
