/**
 * The consumer-group state machine, free of wire formats: members, generations, rebalances,
 * session expiry and committed offsets, following Kafka's GroupCoordinator. JoinGroup and
 * SyncGroup answers may wait (a rebalance in progress); they are promises that always settle,
 * at the latest on close().
 */
import { randomUUID } from "node:crypto";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { unrefTimer } from "../../runtime/runtime.ts";

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

type Timer = ReturnType<typeof setTimeout>;

interface Member {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: GroupProtocol[];
  assignment: Uint8Array;
  joinWaiter: ((r: JoinGroupResult) => void) | null;
  syncWaiter: ((r: SyncGroupResult) => void) | null;
  lastHeartbeatMs: number;
  expiryTimer: Timer | undefined;
}

interface CommittedOffset {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

interface Group {
  groupId: string;
  state: GroupState;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leaderId: string | null;
  /** In join order: the first member is the leader unless it leaves. */
  members: Map<string, Member>;
  /** group.instance.id → member id, for static members. */
  staticMembers: Map<string, string>;
  /** Ids handed out with MEMBER_ID_REQUIRED, waiting for the member to rejoin with them. */
  pendingMembers: Map<string, Timer>;
  offsets: Map<string, Map<number, CommittedOffset>>;
  rebalanceTimer: Timer | undefined;
  /** Set while the initial rebalance delay of a group that was Empty runs. */
  initialDelay: { remainingMs: number; memberJoined: boolean } | null;
}

const EMPTY = new Uint8Array(0);
// setTimeout overflows above 2^31-1 ms; clients may send Number.MAX_SAFE_INTEGER-like timeouts.
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_METADATA_LENGTH = 4096;

function startTimer(ms: number, fn: () => void): Timer {
  const t = setTimeout(fn, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  // Unref'd so that a coordinator with idle groups never keeps a process alive.
  unrefTimer(t);
  return t;
}

function sameProtocols(a: GroupProtocol[], b: GroupProtocol[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((p, i) => {
    const q = b[i];
    return q !== undefined && q.name === p.name && bytesEqual(q.metadata, p.metadata);
  });
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function joinError(errorCode: number, memberId: string): JoinGroupResult {
  return {
    errorCode,
    generationId: -1,
    protocolType: null,
    protocolName: null,
    leaderId: "",
    memberId,
    members: [],
  };
}

function syncError(errorCode: number): SyncGroupResult {
  return { errorCode, assignment: EMPTY };
}

/** Creates the in-memory group state machine behind the group coordinator's APIs. */
export function createGroupManager(opts: GroupManagerOptions): GroupManager {
  const initialRebalanceDelayMs = opts.initialRebalanceDelayMs ?? 0;
  const now = opts.now ?? Date.now;
  const groups = new Map<string, Group>();
  let closed = false;

  function newGroup(groupId: string): Group {
    const group: Group = {
      groupId,
      state: "Empty",
      generationId: 0,
      protocolType: null,
      protocolName: null,
      leaderId: null,
      members: new Map(),
      staticMembers: new Map(),
      pendingMembers: new Map(),
      offsets: new Map(),
      rebalanceTimer: undefined,
      initialDelay: null,
    };
    groups.set(groupId, group);
    return group;
  }

  function isFenced(group: Group, memberId: string, groupInstanceId: string | null): boolean {
    if (groupInstanceId === null) return false;
    const owner = group.staticMembers.get(groupInstanceId);
    return owner !== undefined && owner !== memberId;
  }

  /**
   * Whether the joining member can live with the others: same protocol type, and at least one
   * protocol every other member also supports. The member's own previous protocols do not
   * count, so a lone member may switch protocols.
   */
  function supportsProtocols(group: Group, input: JoinGroupInput, self: string | null): boolean {
    if (input.protocolType === "" || input.protocols.length === 0) return false;
    const others = [...group.members.values()].filter((m) => m.memberId !== self);
    if (others.length === 0) return true;
    if (group.protocolType !== input.protocolType) return false;
    return input.protocols.some((p) =>
      others.every((m) => m.protocols.some((q) => q.name === p.name)),
    );
  }

  /** Each member votes for its most preferred protocol among those all support; ties go to the leader's order. */
  function selectProtocol(group: Group): string {
    const members = [...group.members.values()];
    const leader = (group.leaderId !== null && group.members.get(group.leaderId)) || members[0];
    const candidates = (leader?.protocols ?? [])
      .map((p) => p.name)
      .filter((name) => members.every((m) => m.protocols.some((q) => q.name === name)));
    const votes = new Map<string, number>();
    for (const m of members) {
      const choice = m.protocols.find((p) => candidates.includes(p.name));
      if (choice) votes.set(choice.name, (votes.get(choice.name) ?? 0) + 1);
    }
    let best = candidates[0] ?? "";
    for (const name of candidates) {
      if ((votes.get(name) ?? 0) > (votes.get(best) ?? 0)) best = name;
    }
    return best;
  }

  function maxRebalanceTimeoutMs(group: Group): number {
    let max = 0;
    for (const m of group.members.values()) max = Math.max(max, m.rebalanceTimeoutMs);
    return max;
  }

  function clearRebalanceTimer(group: Group): void {
    if (group.rebalanceTimer !== undefined) clearTimeout(group.rebalanceTimer);
    group.rebalanceTimer = undefined;
    group.initialDelay = null;
  }

  // --- member liveness -------------------------------------------------------------------

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

  function stopExpiry(member: Member): void {
    if (member.expiryTimer !== undefined) clearTimeout(member.expiryTimer);
    member.expiryTimer = undefined;
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

  function currentJoinResult(group: Group, member: Member): JoinGroupResult {
    const protocolName = group.protocolName ?? "";
    const isLeader = member.memberId === group.leaderId;
    return {
      errorCode: ErrorCode.NONE,
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName,
      leaderId: group.leaderId ?? "",
      memberId: member.memberId,
      members: isLeader
        ? [...group.members.values()].map((m) => ({
            memberId: m.memberId,
            groupInstanceId: m.groupInstanceId,
            metadata: m.protocols.find((p) => p.name === protocolName)?.metadata ?? EMPTY,
          }))
        : [],
    };
  }

  /** Drops a member without touching the group's state (the caller decides what follows). */
  function removeMember(group: Group, member: Member): void {
    stopExpiry(member);
    group.members.delete(member.memberId);
    if (
      member.groupInstanceId !== null &&
      group.staticMembers.get(member.groupInstanceId) === member.memberId
    ) {
      group.staticMembers.delete(member.groupInstanceId);
    }
    if (group.leaderId === member.memberId) {
      group.leaderId = group.members.keys().next().value ?? null;
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

  // --- APIs ------------------------------------------------------------------------------

  function joinGroup(input: JoinGroupInput): Promise<JoinGroupResult> {
    const fail = (code: number) => Promise.resolve(joinError(code, input.memberId));
    if (closed) return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE);
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
    if (closed) return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE);
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
    if (closed) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
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
    if (closed) {
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

  function commitOffsets(input: OffsetCommitInput): TopicPartitionErrors[] {
    const groupError = closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : checkCommit(input);
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
              !opts.partitionExists(t.name, p.partition)
                ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                : groupError,
          };
        }
        if (!opts.partitionExists(t.name, p.partition)) {
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
    const errorCode = closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : ErrorCode.NONE;
    const offsets = closed ? undefined : groups.get(groupId)?.offsets;
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
