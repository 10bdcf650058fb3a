/**
 * The consumer-group coordinator's API, free of wire formats: what JoinGroup, SyncGroup,
 * Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch and the admin calls take and answer
 * (group-codecs.ts and offset-codecs.ts translate them from and to the wire).
 */

/** Kafka error codes the coordinator needs beyond the shared table. */
export const GroupErrorCode = {
  OFFSET_METADATA_TOO_LARGE: 12,
  FENCED_INSTANCE_ID: 82,
} as const;

export type GroupState = "Empty" | "PreparingRebalance" | "CompletingRebalance" | "Stable" | "Dead";

export interface GroupProtocol {
  name: string;
  metadata: Uint8Array;
}

export interface JoinGroupInput {
  groupId: string;
  /** "" for a member that has no id yet. */
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: GroupProtocol[];
  /** JoinGroup v4+: a member without id gets MEMBER_ID_REQUIRED and a fresh id to rejoin with. */
  requireKnownMemberId: boolean;
}

export interface JoinGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  metadata: Uint8Array;
}

export interface JoinGroupResult {
  errorCode: number;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leaderId: string;
  memberId: string;
  /** Filled for the leader only. */
  members: JoinGroupMember[];
}

export interface SyncGroupInput {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  assignments: { memberId: string; assignment: Uint8Array }[];
}

export interface SyncGroupResult {
  errorCode: number;
  assignment: Uint8Array;
}

export interface HeartbeatInput {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface LeavingMember {
  memberId: string;
  groupInstanceId: string | null;
}

export interface LeaveGroupResult {
  errorCode: number;
  members: (LeavingMember & { errorCode: number })[];
}

export interface OffsetCommitInput {
  groupId: string;
  /** -1 for a commit outside group management. */
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: {
    name: string;
    partitions: {
      partition: number;
      offset: number;
      leaderEpoch: number;
      metadata: string | null;
    }[];
  }[];
}

export interface TopicPartitionErrors {
  name: string;
  partitions: { partition: number; errorCode: number }[];
}

export interface FetchedOffset {
  partition: number;
  /** -1 when nothing is committed. */
  offset: number;
  leaderEpoch: number;
  metadata: string;
  errorCode: number;
}

export interface OffsetFetchResult {
  errorCode: number;
  topics: { name: string; partitions: FetchedOffset[] }[];
}

export interface DescribedMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  metadata: Uint8Array;
  assignment: Uint8Array;
}

export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  state: GroupState;
  protocolType: string;
  protocolName: string;
  members: DescribedMember[];
}

export interface ListedGroup {
  groupId: string;
  protocolType: string;
}

export interface GroupManagerOptions {
  /** group.initial.rebalance.delay.ms: how long an Empty group waits for more members. */
  initialRebalanceDelayMs?: number;
  partitionExists(topic: string, partition: number): boolean;
  now?: () => number;
}

export interface GroupManager {
  joinGroup(input: JoinGroupInput): Promise<JoinGroupResult>;
  syncGroup(input: SyncGroupInput): Promise<SyncGroupResult>;
  heartbeat(input: HeartbeatInput): number;
  leaveGroup(groupId: string, members: LeavingMember[]): LeaveGroupResult;
  commitOffsets(input: OffsetCommitInput): TopicPartitionErrors[];
  /** `topics` null = every committed offset of the group. */
  fetchOffsets(
    groupId: string,
    topics: { name: string; partitions: number[] }[] | null,
  ): OffsetFetchResult;
  describeGroup(groupId: string): DescribedGroup;
  listGroups(): ListedGroup[];
  deleteGroup(groupId: string): number;
  /** Settles every waiting JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE and stops all timers. */
  close(): void;
}
