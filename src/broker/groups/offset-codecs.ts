/**
 * Request decoders and response encoders for OffsetCommit 0-7 and OffsetFetch 0-5, the
 * classic (non-flexible) versions.
 */
import { type Reader, WireError, type Writer } from "../../kafka/protocol/wire.ts";
import type { OffsetCommitInput, OffsetFetchResult, TopicPartitionErrors } from "./group-api.ts";

/**
 * OffsetCommit request, v0-7. v0 carries no generation or member (a commit outside group
 * management); v1 has a per-partition timestamp and v2-4 a retention time, both ignored;
 * v6 adds the leader epoch; v7 the group.instance.id.
 */
export function decodeOffsetCommitRequest(r: Reader, version: number): OffsetCommitInput {
  const groupId = r.string();
  const generationId = version >= 1 ? r.int32() : -1;
  const memberId = version >= 1 ? r.string() : "";
  const groupInstanceId = version >= 7 ? r.nullableString() : null;
  if (version >= 2 && version <= 4) r.int64(); // retention_time_ms
  const topics = r.array((t) => ({
    name: t.string(),
    partitions: t.array((p) => {
      const partition = p.int32();
      const offset = p.int64n();
      const leaderEpoch = version >= 6 ? p.int32() : -1;
      if (version === 1) p.int64(); // commit_timestamp
      const metadata = p.nullableString();
      return { partition, offset, leaderEpoch, metadata };
    }),
  }));
  return { groupId, generationId, memberId, groupInstanceId, topics };
}

/** OffsetCommit response, v0-7. */
export function encodeOffsetCommitResponse(
  w: Writer,
  version: number,
  topics: TopicPartitionErrors[],
): void {
  if (version >= 3) w.int32(0);
  w.array(topics, (t, topic) => {
    t.string(topic.name);
    t.array(topic.partitions, (p, partition) => {
      p.int32(partition.partition).int16(partition.errorCode);
    });
  });
}

export interface OffsetFetchRequest {
  groupId: string;
  /** null (v2+) = every committed offset of the group. */
  topics: { name: string; partitions: number[] }[] | null;
}

/** OffsetFetch request, v0-5. */
export function decodeOffsetFetchRequest(r: Reader): OffsetFetchRequest {
  const groupId = r.string();
  // Read by hand: Reader.array maps a null array to [], and here null means "all".
  const count = r.int32();
  if (count < 0) return { groupId, topics: null };
  if (count > r.remaining) throw new WireError(`array of ${count} items with ${r.remaining} left`);
  const topics: { name: string; partitions: number[] }[] = [];
  for (let i = 0; i < count; i++) {
    topics.push({ name: r.string(), partitions: r.array((p) => p.int32()) });
  }
  return { groupId, topics };
}

/** OffsetFetch response, v0-5 (v2 adds a top-level error, v5 the leader epoch). */
export function encodeOffsetFetchResponse(
  w: Writer,
  version: number,
  res: OffsetFetchResult,
): void {
  if (version >= 3) w.int32(0);
  w.array(res.topics, (t, topic) => {
    t.string(topic.name);
    t.array(topic.partitions, (p, partition) => {
      p.int32(partition.partition).int64(partition.offset);
      if (version >= 5) p.int32(partition.leaderEpoch);
      p.nullableString(partition.metadata).int16(partition.errorCode);
    });
  });
  if (version >= 2) w.int16(res.errorCode);
}
