/**
 * Joining the group: JoinGroup (again under the id the broker names, when it asks for one),
 * the leader's plan, and SyncGroup. The member's id and generation are updated as the
 * answers come; an error answer throws the link's refusal, for the caller to react to.
 */

import type { Logger } from "../../ops/logger.ts";
import { joinGroupApi } from "../client/apis/join-group.ts";
import { syncGroupApi } from "../client/apis/sync-group.ts";
import type { KafkaCluster } from "../client/kafka-cluster.ts";
import { ErrorCode } from "../protocol/errors.ts";
import {
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  type TopicPartition,
} from "./consumer-protocol.ts";
import type { CoordinatorLink } from "./coordinator-link.ts";
import { assignors, planAssignment } from "./group-assignor.ts";

/** Who this member is in the group; -1 / "" while it has no generation / id. */
export interface MemberIdentity {
  memberId: string;
  generation: number;
}

export interface JoinOptions {
  groupId: string;
  topics: readonly string[];
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  logger: Logger;
}

/** Joins (or rejoins) the group as `member` and resolves with its assignment. */
export async function joinGroup(
  cluster: KafkaCluster,
  link: CoordinatorLink,
  member: MemberIdentity,
  options: JoinOptions,
): Promise<TopicPartition[]> {
  const subscription = encodeSubscription(options.topics);
  for (;;) {
    const joined = await link.call(
      joinGroupApi,
      {
        groupId: options.groupId,
        sessionTimeoutMs: options.sessionTimeoutMs,
        rebalanceTimeoutMs: options.rebalanceTimeoutMs,
        memberId: member.memberId,
        protocolType: "consumer",
        protocols: assignors.map((name) => [name, subscription] as const),
      },
      // The coordinator holds the answer until every member has joined.
      options.rebalanceTimeoutMs,
    );
    if (joined.error === ErrorCode.MEMBER_ID_REQUIRED) {
      // The broker named us: join again under that id.
      member.memberId = joined.memberId;
      continue;
    }
    if (joined.error !== 0) throw link.refusal(joined.error, "join");
    member.memberId = joined.memberId;
    member.generation = joined.generation;
    const plan =
      joined.leader === joined.memberId
        ? await leaderPlan(cluster, joined.protocol, joined.members, options)
        : [];
    const synced = await link.call(syncGroupApi, {
      groupId: options.groupId,
      generation: member.generation,
      memberId: member.memberId,
      assignments: plan,
    });
    if (synced.error !== 0) throw link.refusal(synced.error, "sync");
    return decodeAssignment(synced.assignment);
  }
}

/** The leader's plan for every member, as SyncGroup carries it. */
async function leaderPlan(
  cluster: KafkaCluster,
  protocol: string,
  members: readonly { memberId: string; metadata: Uint8Array }[],
  options: JoinOptions,
): Promise<[string, Uint8Array][]> {
  const subscribed = members.map((m) => ({
    memberId: m.memberId,
    topics: decodeSubscription(m.metadata),
  }));
  const topics = [...new Set(subscribed.flatMap((m) => m.topics))].sort();
  await cluster.refresh(topics).catch(() => {});
  const counts = new Map<string, number>();
  for (const topic of topics) {
    // A topic left out here stays unread until the next rebalance: wait out what a
    // cluster answers while it creates a topic or moves leaders.
    try {
      const partitions = await cluster.partitionsWithin(
        topic,
        Date.now() + cluster.settings.retryTimeoutMs,
      );
      counts.set(topic, partitions.length);
    } catch (error) {
      options.logger.warn("no partitions to assign for a subscribed topic", {
        groupId: options.groupId,
        topic,
        error,
      });
    }
  }
  const plan = planAssignment(protocol, subscribed, counts);
  return [...plan].map(([id, parts]) => [id, encodeAssignment(parts)]);
}
