/**
 * Member liveness and rebalancing, after Kafka's GroupCoordinator: session expiry, the
 * PreparingRebalance → CompletingRebalance steps, the initial rebalance delay of an Empty
 * group, and what joins, leaves and static members coming back set off.
 */
import { randomUUID } from "node:crypto";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { GroupErrorCode, type JoinGroupInput, type JoinGroupResult } from "./group-api.ts";
import {
  clearRebalanceTimer,
  currentJoinResult,
  EMPTY,
  type Group,
  joinError,
  type Member,
  maxRebalanceTimeoutMs,
  removeMember,
  sameProtocols,
  selectProtocol,
  startTimer,
  syncError,
} from "./group-state.ts";

export interface Rebalancer {
  /** A sign of life from `member`: its session starts again. */
  touch(group: Group, member: Member): void;
  /** Starts a rebalance: every member must rejoin within the rebalance timeout. */
  prepareRebalance(group: Group): void;
  /** Completes the join once every member (and no pending id) is waiting in JoinGroup. */
  tryCompleteJoin(group: Group): void;
  /** A member left or expired: answer what it waits on, and rebalance the rest. */
  removeMemberAndUpdateGroup(group: Group, member: Member): void;
  /** A new member joins; answered when the join completes. */
  addMemberAndRebalance(
    group: Group,
    memberId: string,
    input: JoinGroupInput,
  ): Promise<JoinGroupResult>;
  /** A known member joins again; answered when the join completes. */
  updateMemberAndRebalance(
    group: Group,
    member: Member,
    input: JoinGroupInput,
  ): Promise<JoinGroupResult>;
  /** A static member came back without its member id. */
  replaceStaticMember(group: Group, old: Member, input: JoinGroupInput): Promise<JoinGroupResult>;
}

export interface RebalancerOptions {
  now(): number;
  /** group.initial.rebalance.delay.ms: how long an Empty group waits for more members. */
  initialRebalanceDelayMs: number;
}

/** The rebalancing rules, with the coordinator's clock and initial delay. */
export function createRebalancer(options: RebalancerOptions): Rebalancer {
  const { now, initialRebalanceDelayMs } = options;

  function touch(group: Group, member: Member): void {
    member.lastHeartbeatMs = now();
    if (member.expiryTimer === undefined) armExpiry(group, member, member.sessionTimeoutMs);
  }

  function armExpiry(group: Group, member: Member, delayMs: number): void {
    member.expiryTimer = startTimer(delayMs, () => {
      member.expiryTimer = undefined;
      if (group.members.get(member.memberId) !== member) return;
      // A member waiting in JoinGroup or SyncGroup cannot heartbeat; the rebalance timeout
      // (or the leader's own expiry) decides its fate instead.
      if (member.joinWaiter !== null || member.syncWaiter !== null) {
        member.lastHeartbeatMs = now();
        armExpiry(group, member, member.sessionTimeoutMs);
        return;
      }
      const leftMs = member.lastHeartbeatMs + member.sessionTimeoutMs - now();
      if (leftMs > 0) {
        armExpiry(group, member, leftMs);
        return;
      }
      removeMemberAndUpdateGroup(group, member);
    });
  }

  // --- rebalancing -----------------------------------------------------------------------

  function prepareRebalance(group: Group): void {
    if (group.state === "CompletingRebalance") {
      // Assignments of the generation being completed are void; waiting followers must rejoin.
      for (const m of group.members.values()) {
        m.assignment = EMPTY;
        const waiter = m.syncWaiter;
        m.syncWaiter = null;
        waiter?.(syncError(ErrorCode.REBALANCE_IN_PROGRESS));
      }
    }
    const wasEmpty = group.state === "Empty";
    group.state = "PreparingRebalance";
    clearRebalanceTimer(group);
    const rebalanceTimeoutMs = maxRebalanceTimeoutMs(group);
    if (wasEmpty && initialRebalanceDelayMs > 0) {
      const delayMs = Math.min(initialRebalanceDelayMs, rebalanceTimeoutMs);
      group.initialDelay = { remainingMs: rebalanceTimeoutMs - delayMs, memberJoined: false };
      group.rebalanceTimer = startTimer(delayMs, () => onInitialDelayElapsed(group));
      return;
    }
    group.rebalanceTimer = startTimer(rebalanceTimeoutMs, () => {
      group.rebalanceTimer = undefined;
      if (group.state === "PreparingRebalance") completeJoin(group);
    });
    tryCompleteJoin(group);
  }

  /** Like Kafka's InitialDelayedJoin: keep waiting while members keep arriving, within the rebalance timeout. */
  function onInitialDelayElapsed(group: Group): void {
    group.rebalanceTimer = undefined;
    const delay = group.initialDelay;
    if (delay === null || group.state !== "PreparingRebalance") return;
    if (delay.memberJoined && delay.remainingMs > 0) {
      const delayMs = Math.min(initialRebalanceDelayMs, delay.remainingMs);
      group.initialDelay = { remainingMs: delay.remainingMs - delayMs, memberJoined: false };
      group.rebalanceTimer = startTimer(delayMs, () => onInitialDelayElapsed(group));
      return;
    }
    group.initialDelay = null;
    completeJoin(group);
  }

  function tryCompleteJoin(group: Group): void {
    if (group.state !== "PreparingRebalance" || group.initialDelay !== null) return;
    if (group.pendingMembers.size > 0) return;
    for (const m of group.members.values()) if (m.joinWaiter === null) return;
    completeJoin(group);
  }

  function completeJoin(group: Group): void {
    clearRebalanceTimer(group);
    // Members that did not rejoin in time are out of the group.
    for (const m of [...group.members.values()]) {
      if (m.joinWaiter === null) removeMember(group, m);
    }
    group.generationId += 1;
    if (group.members.size === 0) {
      group.state = "Empty";
      group.protocolName = null;
      group.leaderId = null;
      return;
    }
    if (group.leaderId === null || !group.members.has(group.leaderId)) {
      group.leaderId = group.members.keys().next().value ?? null;
    }
    group.protocolName = selectProtocol(group);
    group.state = "CompletingRebalance";
    for (const m of group.members.values()) {
      const waiter = m.joinWaiter;
      m.joinWaiter = null;
      m.lastHeartbeatMs = now();
      waiter?.(currentJoinResult(group, m));
    }
  }

  /** A member left or expired: answer what it waits on, and rebalance the rest. */
  function removeMemberAndUpdateGroup(group: Group, member: Member): void {
    const joinWaiter = member.joinWaiter;
    const syncWaiter = member.syncWaiter;
    member.joinWaiter = null;
    member.syncWaiter = null;
    removeMember(group, member);
    joinWaiter?.(joinError(ErrorCode.UNKNOWN_MEMBER_ID, member.memberId));
    syncWaiter?.(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
    if (group.state === "Stable" || group.state === "CompletingRebalance") {
      prepareRebalance(group);
    } else if (group.state === "PreparingRebalance") {
      tryCompleteJoin(group);
    }
  }

  function addMemberAndRebalance(
    group: Group,
    memberId: string,
    input: JoinGroupInput,
  ): Promise<JoinGroupResult> {
    return new Promise((resolve) => {
      const member: Member = {
        memberId,
        groupInstanceId: input.groupInstanceId,
        clientId: input.clientId,
        clientHost: input.clientHost,
        sessionTimeoutMs: input.sessionTimeoutMs,
        rebalanceTimeoutMs: input.rebalanceTimeoutMs,
        protocols: input.protocols,
        assignment: EMPTY,
        joinWaiter: resolve,
        syncWaiter: null,
        lastHeartbeatMs: now(),
        expiryTimer: undefined,
      };
      if (group.members.size === 0) group.protocolType = input.protocolType;
      group.members.set(memberId, member);
      if (group.leaderId === null) group.leaderId = memberId;
      if (input.groupInstanceId !== null) group.staticMembers.set(input.groupInstanceId, memberId);
      touch(group, member);
      if (group.state === "PreparingRebalance") {
        if (group.initialDelay !== null) group.initialDelay.memberJoined = true;
        tryCompleteJoin(group);
      } else {
        prepareRebalance(group);
      }
    });
  }

  function updateMemberAndRebalance(
    group: Group,
    member: Member,
    input: JoinGroupInput,
  ): Promise<JoinGroupResult> {
    return new Promise((resolve) => {
      member.protocols = input.protocols;
      member.sessionTimeoutMs = input.sessionTimeoutMs;
      member.rebalanceTimeoutMs = input.rebalanceTimeoutMs;
      member.clientId = input.clientId;
      member.clientHost = input.clientHost;
      const previous = member.joinWaiter;
      member.joinWaiter = resolve;
      // A second JoinGroup from the same member replaces the first; the first must still be answered.
      previous?.(joinError(ErrorCode.REBALANCE_IN_PROGRESS, member.memberId));
      touch(group, member);
      if (group.state === "PreparingRebalance") tryCompleteJoin(group);
      else prepareRebalance(group);
    });
  }

  /**
   * A static member (group.instance.id) came back without its member id: it takes over the
   * old member's place under a new id, and the old id is fenced.
   */
  function replaceStaticMember(
    group: Group,
    old: Member,
    input: JoinGroupInput,
  ): Promise<JoinGroupResult> {
    const newId = `${input.groupInstanceId}-${randomUUID()}`;
    const joinWaiter = old.joinWaiter;
    const syncWaiter = old.syncWaiter;
    old.joinWaiter = null;
    old.syncWaiter = null;
    joinWaiter?.(joinError(GroupErrorCode.FENCED_INSTANCE_ID, old.memberId));
    syncWaiter?.(syncError(GroupErrorCode.FENCED_INSTANCE_ID));
    // Rebuild the members map so the new id keeps the old one's position (leader order).
    const entries = [...group.members.entries()].map(([id, m]): [string, Member] =>
      id === old.memberId ? [newId, m] : [id, m],
    );
    group.members = new Map(entries);
    old.memberId = newId;
    if (input.groupInstanceId !== null) group.staticMembers.set(input.groupInstanceId, newId);
    if (group.leaderId !== null && !group.members.has(group.leaderId)) group.leaderId = newId;
    const unchanged = sameProtocols(old.protocols, input.protocols);
    if (group.state === "Stable" && unchanged && group.leaderId !== newId) {
      // Nothing changed for the group: the member resumes with its old assignment.
      old.clientId = input.clientId;
      old.clientHost = input.clientHost;
      old.sessionTimeoutMs = input.sessionTimeoutMs;
      old.rebalanceTimeoutMs = input.rebalanceTimeoutMs;
      touch(group, old);
      return Promise.resolve(currentJoinResult(group, old));
    }
    return updateMemberAndRebalance(group, old, input);
  }

  return {
    touch,
    prepareRebalance,
    tryCompleteJoin,
    removeMemberAndUpdateGroup,
    addMemberAndRebalance,
    updateMemberAndRebalance,
    replaceStaticMember,
  };
}
