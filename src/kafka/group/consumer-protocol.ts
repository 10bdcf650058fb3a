/**
 * The "consumer" protocol's metadata, as every Kafka consumer writes it: a member's
 * subscription (its topics) in JoinGroup, and each member's assignment (its partitions) in
 * SyncGroup. Written at v0; any later version is read (its added fields are ignored).
 */
import { Reader, Writer } from "../protocol/wire.ts";

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** ConsumerProtocolSubscription v0: the topics, no user data. */
export function encodeSubscription(topics: readonly string[]): Uint8Array {
  const w = new Writer(64);
  w.int16(0)
    .array(topics, (w, t) => w.string(t))
    .nullableBytes(null);
  return w.bytesView().slice();
}

/** The topics of any version of ConsumerProtocolSubscription (later fields ignored). */
export function decodeSubscription(bytes: Uint8Array): string[] {
  if (bytes.length < 6) return [];
  const r = new Reader(bytes);
  r.int16();
  return r.array((r) => r.string());
}

/** ConsumerProtocolAssignment v0. */
export function encodeAssignment(parts: readonly TopicPartition[]): Uint8Array {
  const w = new Writer(64);
  w.int16(0)
    .array([...groupByTopic(parts)], (w, [topic, list]) =>
      w.string(topic).array(list, (w, p) => w.int32(p)),
    )
    .nullableBytes(null);
  return w.bytesView().slice();
}

/** The partitions of any version of ConsumerProtocolAssignment (empty bytes = none). */
export function decodeAssignment(bytes: Uint8Array): TopicPartition[] {
  if (bytes.length < 6) return [];
  const r = new Reader(bytes);
  r.int16();
  return r
    .array((r) => {
      const topic = r.string();
      return r.array((r) => r.int32()).map((partition) => ({ topic, partition }));
    })
    .flat();
}

/** The partitions of `parts` per topic, in order. */
export function groupByTopic(parts: readonly TopicPartition[]): Map<string, number[]> {
  const byTopic = new Map<string, number[]>();
  for (const { topic, partition } of parts) {
    const list = byTopic.get(topic);
    if (list) list.push(partition);
    else byTopic.set(topic, [partition]);
  }
  return byTopic;
}
