/**
 * Committed offsets: OffsetCommit (checked against the group's generation and member, or
 * outside group management with generation -1) and OffsetFetch.
 */
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  type FetchedOffset,
  GroupErrorCode,
  type GroupManager,
  type OffsetCommitInput,
  type OffsetFetchResult,
  type TopicPartitionErrors,
} from "./group-api.ts";
import type { Rebalancer } from "./group-rebalance.ts";
import {
  type CommittedOffset,
  type GroupRegistry,
  isFenced,
  MAX_METADATA_LENGTH,
} from "./group-state.ts";

/** The offset calls of a coordinator over `registry`'s groups. */
export function createOffsetStore(
  registry: GroupRegistry,
  { touch }: Rebalancer,
  partitionExists: (topic: string, partition: number) => boolean,
): Pick<GroupManager, "commitOffsets" | "fetchOffsets"> {
  const { groups, now, newGroup } = registry;

  function commitOffsets(input: OffsetCommitInput): TopicPartitionErrors[] {
    const groupError = registry.closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : checkCommit(input);
    let group = groups.get(input.groupId);
    return input.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        if (groupError !== ErrorCode.NONE) {
          // A partition that does not exist says so whatever the group's state (as Kafka does).
          return {
            partition: p.partition,
            errorCode:
              groupError !== ErrorCode.COORDINATOR_NOT_AVAILABLE &&
              !partitionExists(t.name, p.partition)
                ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                : groupError,
          };
        }
        if (!partitionExists(t.name, p.partition)) {
          return { partition: p.partition, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
        }
        if (p.metadata !== null && p.metadata.length > MAX_METADATA_LENGTH) {
          return { partition: p.partition, errorCode: GroupErrorCode.OFFSET_METADATA_TOO_LARGE };
        }
        group ??= newGroup(input.groupId);
        let partitions = group.offsets.get(t.name);
        if (partitions === undefined) {
          partitions = new Map();
          group.offsets.set(t.name, partitions);
        }
        partitions.set(p.partition, {
          offset: p.offset,
          leaderEpoch: p.leaderEpoch,
          metadata: p.metadata ?? "",
          commitTimestampMs: now(),
        });
        return { partition: p.partition, errorCode: ErrorCode.NONE };
      }),
    }));
  }

  /** The group-level verdict on a commit, in Kafka's order of checks. */
  function checkCommit(input: OffsetCommitInput): number {
    const group = groups.get(input.groupId);
    if (group === undefined) {
      // Without a group, only a commit outside group management makes sense.
      return input.generationId < 0 ? ErrorCode.NONE : ErrorCode.ILLEGAL_GENERATION;
    }
    if (input.generationId < 0 && group.state === "Empty") return ErrorCode.NONE;
    if (isFenced(group, input.memberId, input.groupInstanceId)) {
      return GroupErrorCode.FENCED_INSTANCE_ID;
    }
    // Commits stay allowed while PreparingRebalance, so members can commit before rejoining.
    if (group.state === "CompletingRebalance") return ErrorCode.REBALANCE_IN_PROGRESS;
    const member = group.members.get(input.memberId);
    if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (input.generationId !== group.generationId) return ErrorCode.ILLEGAL_GENERATION;
    touch(group, member);
    return ErrorCode.NONE;
  }

  function fetchOffsets(
    groupId: string,
    topics: { name: string; partitions: number[] }[] | null,
  ): OffsetFetchResult {
    const errorCode = registry.closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : ErrorCode.NONE;
    const offsets = registry.closed ? undefined : groups.get(groupId)?.offsets;
    const fetched = (name: string, partition: number): FetchedOffset => {
      const c = offsets?.get(name)?.get(partition);
      return {
        partition,
        offset: c?.offset ?? -1,
        leaderEpoch: c?.leaderEpoch ?? -1,
        metadata: c?.metadata ?? "",
        errorCode,
      };
    };
    if (topics !== null) {
      return {
        errorCode,
        topics: topics.map((t) => ({
          name: t.name,
          partitions: t.partitions.map((p) => fetched(t.name, p)),
        })),
      };
    }
    return {
      errorCode,
      topics: [...(offsets ?? new Map<string, Map<number, CommittedOffset>>())].map(
        ([name, partitions]) => ({
          name,
          partitions: [...partitions.keys()].sort((a, b) => a - b).map((p) => fetched(name, p)),
        }),
      ),
    };
  }

  return { commitOffsets, fetchOffsets };
}
