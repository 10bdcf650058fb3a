/**
 * The consumer-group state machine, free of wire formats: members, generations, rebalances,
 * session expiry and committed offsets, following Kafka's GroupCoordinator. JoinGroup and
 * SyncGroup answers may wait (a rebalance in progress); they are promises that always settle,
 * at the latest on close().
 */
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type {
  DescribedGroup,
  GroupManager,
  GroupManagerOptions,
  ListedGroup,
} from "./group-api.ts";
import { createMembership } from "./group-membership.ts";
import { createOffsetStore } from "./group-offsets.ts";
import { createRebalancer } from "./group-rebalance.ts";
import {
  clearRebalanceTimer,
  createGroup,
  EMPTY,
  type Group,
  type GroupRegistry,
  joinError,
  stopExpiry,
  syncError,
} from "./group-state.ts";

// The API's types live in group-api.ts, so that the manager's parts share them without
// importing the manager; callers of the manager find them here too.
export type {
  DescribedGroup,
  GroupManager,
  GroupManagerOptions,
  JoinGroupInput,
  JoinGroupResult,
  ListedGroup,
} from "./group-api.ts";

/** Creates the in-memory group state machine behind the group coordinator's APIs. */
export function createGroupManager(opts: GroupManagerOptions): GroupManager {
  const initialRebalanceDelayMs = opts.initialRebalanceDelayMs ?? 0;
  const now = opts.now ?? Date.now;
  const groups = new Map<string, Group>();
  let closed = false;
  const registry: GroupRegistry = {
    groups,
    get closed() {
      return closed;
    },
    now,
    newGroup(groupId) {
      const group = createGroup(groupId);
      groups.set(groupId, group);
      return group;
    },
  };
  const rebalancer = createRebalancer({ now, initialRebalanceDelayMs });
  const { joinGroup, syncGroup, heartbeat, leaveGroup } = createMembership(registry, rebalancer);
  const { commitOffsets, fetchOffsets } = createOffsetStore(
    registry,
    rebalancer,
    opts.partitionExists,
  );

  function describeGroup(groupId: string): DescribedGroup {
    const group = closed ? undefined : groups.get(groupId);
    if (group === undefined) {
      return {
        errorCode: closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : ErrorCode.NONE,
        groupId,
        state: "Dead",
        protocolType: "",
        protocolName: "",
        members: [],
      };
    }
    // Like Kafka, metadata and assignments are only shown once they are settled.
    const stable = group.state === "Stable";
    const protocolName = stable ? (group.protocolName ?? "") : "";
    return {
      errorCode: ErrorCode.NONE,
      groupId,
      state: group.state,
      protocolType: group.protocolType ?? "",
      protocolName,
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: stable
          ? (m.protocols.find((p) => p.name === protocolName)?.metadata ?? EMPTY)
          : EMPTY,
        assignment: stable ? m.assignment : EMPTY,
      })),
    };
  }

  function listGroups(): ListedGroup[] {
    if (closed) return [];
    return [...groups.values()].map((g) => ({
      groupId: g.groupId,
      protocolType: g.protocolType ?? "",
    }));
  }

  function deleteGroup(groupId: string): number {
    if (closed) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    const group = groups.get(groupId);
    if (group === undefined) return ErrorCode.GROUP_ID_NOT_FOUND;
    if (group.state !== "Empty") return ErrorCode.NON_EMPTY_GROUP;
    for (const timer of group.pendingMembers.values()) clearTimeout(timer);
    group.pendingMembers.clear();
    clearRebalanceTimer(group);
    group.state = "Dead";
    groups.delete(groupId);
    return ErrorCode.NONE;
  }

  function close(): void {
    if (closed) return;
    closed = true;
    for (const group of groups.values()) {
      clearRebalanceTimer(group);
      for (const timer of group.pendingMembers.values()) clearTimeout(timer);
      group.pendingMembers.clear();
      for (const m of group.members.values()) {
        stopExpiry(m);
        const joinWaiter = m.joinWaiter;
        const syncWaiter = m.syncWaiter;
        m.joinWaiter = null;
        m.syncWaiter = null;
        joinWaiter?.(joinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, m.memberId));
        syncWaiter?.(syncError(ErrorCode.COORDINATOR_NOT_AVAILABLE));
      }
    }
  }

  return {
    joinGroup,
    syncGroup,
    heartbeat,
    leaveGroup,
    commitOffsets,
    fetchOffsets,
    describeGroup,
    listGroups,
    deleteGroup,
    close,
  };
}
