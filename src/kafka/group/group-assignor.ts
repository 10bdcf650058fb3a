/**
 * The group leader's plan: every partition of every subscribed topic to exactly one member
 * subscribed to it, by range (Kafka's default: consecutive partitions per member) or round
 * robin. Members and topics are taken in sorted order, so every leader plans alike.
 */
import type { TopicPartition } from "./consumer-protocol.ts";

/**
 * Assignors offered, in order of preference. All three use the standard consumer protocol
 * format; "RoundRobinAssigner" is the name kafkajs gives round robin, so members of earlier
 * gateway versions (kafkajs) and this one can share a group during a rolling upgrade.
 */
export const assignors = ["range", "roundrobin", "RoundRobinAssigner"] as const;

export interface GroupMemberTopics {
  memberId: string;
  topics: readonly string[];
}

/**
 * Each member's partitions under `protocol` ("range", else round robin), given each
 * topic's partition count (a topic missing from `partitionCounts` is left unassigned).
 */
export function planAssignment(
  protocol: string,
  members: readonly GroupMemberTopics[],
  partitionCounts: ReadonlyMap<string, number>,
): Map<string, TopicPartition[]> {
  const plan = new Map<string, TopicPartition[]>(members.map((m) => [m.memberId, []]));
  const ids = members.map((m) => m.memberId).sort();
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  let turn = 0;
  for (const topic of topics) {
    const count = partitionCounts.get(topic) ?? 0;
    const takers = ids.filter((id) =>
      members.find((m) => m.memberId === id)?.topics.includes(topic),
    );
    if (takers.length === 0) continue;
    for (let p = 0; p < count; p++) {
      const member =
        protocol === "range"
          ? takers[rangeOwner(p, count, takers.length)]
          : takers[turn++ % takers.length];
      plan.get(member as string)?.push({ topic, partition: p });
    }
  }
  return plan;
}

/** Which of `members` members owns partition `p` of `count` under range assignment. */
export function rangeOwner(p: number, count: number, members: number): number {
  const per = Math.floor(count / members);
  const extra = count % members;
  // The first `extra` members take per + 1 partitions each.
  const cut = extra * (per + 1);
  return p < cut ? Math.floor(p / (per + 1)) : extra + Math.floor((p - cut) / Math.max(per, 1));
}
