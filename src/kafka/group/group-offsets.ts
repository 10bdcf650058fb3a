/**
 * A group's committed offsets: reading them (OffsetFetch) and committing new ones
 * (OffsetCommit) through the coordinator. Answers are checked: one that names a partition
 * not asked for, or leaves one out, is a KafkaAnswerError.
 */

import type { GroupMemberRef } from "../client/apis/heartbeat.ts";
import { checkAnsweredPartitions } from "../client/apis/kafka-api.ts";
import { type OffsetCommitPartition, offsetCommitApi } from "../client/apis/offset-commit.ts";
import { offsetFetchApi } from "../client/apis/offset-fetch.ts";
import { groupByTopic, type TopicPartition } from "./consumer-protocol.ts";
import type { CoordinatorLink } from "./coordinator-link.ts";

/** The next offset to read, per partition. */
export interface CommitOffset extends TopicPartition {
  offset: bigint;
}

/** The key of a partition in position maps: "topic\0partition". */
export function positionKey(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}

/**
 * The committed next-to-read offset of each of `parts` that has one, by `positionKey`;
 * a refusal throws (the link's `refusal`).
 */
export async function fetchCommittedOffsets(
  link: CoordinatorLink,
  groupId: string,
  parts: readonly TopicPartition[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (parts.length === 0) return out;
  const asked = groupByTopic(parts);
  const answer = await link.call(offsetFetchApi, { groupId, topics: [...asked] });
  if (answer.error !== 0) throw link.refusal(answer.error, "offset fetch");
  checkAnsweredPartitions("OffsetFetch", `group ${groupId}`, asked, answer.partitions, true);
  for (const p of answer.partitions) {
    if (p.error !== 0) throw link.refusal(p.error, `committed offset of ${p.topic}-${p.partition}`);
    if (p.offset >= 0) out.set(positionKey(p.topic, p.partition), p.offset);
  }
  return out;
}

/** Commits `offsets` under `member`'s generation; returns each partition's answer. */
export async function commitOffsets(
  link: CoordinatorLink,
  member: GroupMemberRef,
  offsets: readonly CommitOffset[],
): Promise<OffsetCommitPartition[]> {
  const byTopic = new Map<string, CommitOffset[]>();
  for (const o of offsets) {
    const list = byTopic.get(o.topic);
    if (list) list.push(o);
    else byTopic.set(o.topic, [o]);
  }
  const answer = await link.call(offsetCommitApi, { ...member, topics: [...byTopic] });
  checkAnsweredPartitions(
    "OffsetCommit",
    `group ${member.groupId}`,
    groupByTopic(offsets),
    answer,
    true,
  );
  return answer;
}
