/**
 * The membership APIs: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, checked in Kafka's
 * order (closed coordinator, group id, fencing, member, generation) before the group's
 * state decides the answer.
 */
import { randomUUID } from "node:crypto";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  GroupErrorCode,
  type GroupManager,
  type HeartbeatInput,
  type JoinGroupInput,
  type JoinGroupResult,
  type LeaveGroupResult,
  type LeavingMember,
  type SyncGroupInput,
  type SyncGroupResult,
} from "./group-api.ts";
import type { Rebalancer } from "./group-rebalance.ts";
import {
  currentJoinResult,
  EMPTY,
  type Group,
  type GroupRegistry,
  isFenced,
  joinError,
  sameProtocols,
  startTimer,
  supportsProtocols,
  syncError,
} from "./group-state.ts";

/** The membership calls of a coordinator over `registry`'s groups. */
export function createMembership(
  registry: GroupRegistry,
  rebalancer: Rebalancer,
): Pick<GroupManager, "joinGroup" | "syncGroup" | "heartbeat" | "leaveGroup"> {
  const { groups, now, newGroup } = registry;
  const {
    touch,
    tryCompleteJoin,
    removeMemberAndUpdateGroup,
    addMemberAndRebalance,
    updateMemberAndRebalance,
    replaceStaticMember,
  } = rebalancer;

  function joinGroup(input: JoinGroupInput): Promise<JoinGroupResult> {
    const fail = (code: number) => Promise.resolve(joinError(code, input.memberId));
    if (registry.closed) return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    if (input.groupId === "") return fail(ErrorCode.INVALID_GROUP_ID);
    if (input.sessionTimeoutMs <= 0 || input.rebalanceTimeoutMs <= 0) {
      return fail(ErrorCode.INVALID_SESSION_TIMEOUT);
    }
    let group = groups.get(input.groupId);
    if (group === undefined) {
      if (input.memberId !== "") return fail(ErrorCode.UNKNOWN_MEMBER_ID);
      group = newGroup(input.groupId);
    }
    const staticOwner =
      input.groupInstanceId !== null ? group.staticMembers.get(input.groupInstanceId) : undefined;
    const self = input.memberId !== "" ? input.memberId : (staticOwner ?? null);
    if (!supportsProtocols(group, input, self)) return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);

    if (input.memberId === "") {
      const old = staticOwner !== undefined ? group.members.get(staticOwner) : undefined;
      if (old !== undefined) return replaceStaticMember(group, old, input);
      const prefix = input.groupInstanceId ?? input.clientId;
      const memberId = `${prefix}-${randomUUID()}`;
      if (input.requireKnownMemberId && input.groupInstanceId === null) {
        const g = group;
        g.pendingMembers.set(
          memberId,
          // A member that never comes back with its id must not hold up rebalances forever.
          startTimer(input.sessionTimeoutMs, () => {
            if (g.pendingMembers.delete(memberId)) tryCompleteJoin(g);
          }),
        );
        return Promise.resolve(joinError(ErrorCode.MEMBER_ID_REQUIRED, memberId));
      }
      return addMemberAndRebalance(group, memberId, input);
    }

    const pendingTimer = group.pendingMembers.get(input.memberId);
    if (pendingTimer !== undefined) {
      clearTimeout(pendingTimer);
      group.pendingMembers.delete(input.memberId);
      return addMemberAndRebalance(group, input.memberId, input);
    }
    if (isFenced(group, input.memberId, input.groupInstanceId)) {
      return fail(GroupErrorCode.FENCED_INSTANCE_ID);
    }
    const member = group.members.get(input.memberId);
    if (member === undefined) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    switch (group.state) {
      case "PreparingRebalance":
        return updateMemberAndRebalance(group, member, input);
      case "CompletingRebalance":
        // A member that lost its JoinGroup answer asks again: same protocols, same answer.
        if (sameProtocols(member.protocols, input.protocols)) {
          touch(group, member);
          return Promise.resolve(currentJoinResult(group, member));
        }
        return updateMemberAndRebalance(group, member, input);
      case "Stable":
        // The leader rejoining means it wants a new assignment (e.g. topic metadata changed).
        if (
          member.memberId === group.leaderId ||
          !sameProtocols(member.protocols, input.protocols)
        ) {
          return updateMemberAndRebalance(group, member, input);
        }
        touch(group, member);
        return Promise.resolve(currentJoinResult(group, member));
      default:
        return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    }
  }

  function syncGroup(input: SyncGroupInput): Promise<SyncGroupResult> {
    const fail = (code: number) => Promise.resolve(syncError(code));
    if (registry.closed) return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    if (input.groupId === "") return fail(ErrorCode.INVALID_GROUP_ID);
    const group = groups.get(input.groupId);
    if (group !== undefined && isFenced(group, input.memberId, input.groupInstanceId)) {
      return fail(GroupErrorCode.FENCED_INSTANCE_ID);
    }
    const member = group?.members.get(input.memberId);
    if (group === undefined || member === undefined) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    if (input.generationId !== group.generationId) return fail(ErrorCode.ILLEGAL_GENERATION);
    switch (group.state) {
      case "PreparingRebalance":
        return fail(ErrorCode.REBALANCE_IN_PROGRESS);
      case "Stable":
        touch(group, member);
        return Promise.resolve({ errorCode: ErrorCode.NONE, assignment: member.assignment });
      case "CompletingRebalance":
        return new Promise((resolve) => {
          const previous = member.syncWaiter;
          member.syncWaiter = resolve;
          previous?.(syncError(ErrorCode.REBALANCE_IN_PROGRESS));
          touch(group, member);
          if (member.memberId !== group.leaderId) return;
          const byMember = new Map(input.assignments.map((a) => [a.memberId, a.assignment]));
          group.state = "Stable";
          for (const m of group.members.values()) {
            m.assignment = byMember.get(m.memberId) ?? EMPTY;
            const waiter = m.syncWaiter;
            m.syncWaiter = null;
            if (waiter !== null) {
              m.lastHeartbeatMs = now();
              waiter({ errorCode: ErrorCode.NONE, assignment: m.assignment });
            }
          }
        });
      default:
        return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    }
  }

  function heartbeat(input: HeartbeatInput): number {
    if (registry.closed) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    if (input.groupId === "") return ErrorCode.INVALID_GROUP_ID;
    const group = groups.get(input.groupId);
    if (group !== undefined && isFenced(group, input.memberId, input.groupInstanceId)) {
      return GroupErrorCode.FENCED_INSTANCE_ID;
    }
    const member = group?.members.get(input.memberId);
    if (group === undefined || member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (input.generationId !== group.generationId) return ErrorCode.ILLEGAL_GENERATION;
    touch(group, member);
    return group.state === "PreparingRebalance" ? ErrorCode.REBALANCE_IN_PROGRESS : ErrorCode.NONE;
  }

  function leaveGroup(groupId: string, leaving: LeavingMember[]): LeaveGroupResult {
    if (registry.closed) {
      return {
        errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE,
        members: leaving.map((m) => ({ ...m, errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE })),
      };
    }
    if (groupId === "") {
      return {
        errorCode: ErrorCode.INVALID_GROUP_ID,
        members: leaving.map((m) => ({ ...m, errorCode: ErrorCode.INVALID_GROUP_ID })),
      };
    }
    const group = groups.get(groupId);
    const members = leaving.map((m) => ({ ...m, errorCode: leaveOne(group, m) }));
    return { errorCode: ErrorCode.NONE, members };
  }

  function leaveOne(group: Group | undefined, leaving: LeavingMember): number {
    if (group === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    let memberId = leaving.memberId;
    if (leaving.groupInstanceId !== null) {
      const owner = group.staticMembers.get(leaving.groupInstanceId);
      if (owner === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
      if (memberId !== "" && memberId !== owner) return GroupErrorCode.FENCED_INSTANCE_ID;
      memberId = owner;
    }
    const pendingTimer = group.pendingMembers.get(memberId);
    if (pendingTimer !== undefined) {
      clearTimeout(pendingTimer);
      group.pendingMembers.delete(memberId);
      tryCompleteJoin(group);
      return ErrorCode.NONE;
    }
    const member = group.members.get(memberId);
    if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    removeMemberAndUpdateGroup(group, member);
    return ErrorCode.NONE;
  }

  return { joinGroup, syncGroup, heartbeat, leaveGroup };
}
