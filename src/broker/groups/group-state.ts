/**
 * The coordinator's in-memory model: groups, members and committed offsets, and the rules
 * that read or change one group without timers of their own (protocol choice, fencing of
 * static members, removing a member, the JoinGroup answer a member gets).
 */
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { unrefTimer } from "../../runtime/runtime.ts";
import type {
  GroupProtocol,
  GroupState,
  JoinGroupInput,
  JoinGroupResult,
  SyncGroupResult,
} from "./group-api.ts";

export type Timer = ReturnType<typeof setTimeout>;

export interface Member {
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

export interface CommittedOffset {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

export interface Group {
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

/** What the coordinator's parts share: the groups, the clock, and whether it is closed. */
export interface GroupRegistry {
  groups: Map<string, Group>;
  readonly closed: boolean;
  now(): number;
  /** Creates group `groupId` (Empty, generation 0) and registers it. */
  newGroup(groupId: string): Group;
}

export const EMPTY = new Uint8Array(0);
// setTimeout overflows above 2^31-1 ms; clients may send Number.MAX_SAFE_INTEGER-like timeouts.
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The longest offset metadata a commit may carry (Kafka's offset.metadata.max.bytes). */
export const MAX_METADATA_LENGTH = 4096;

/** A timer clamped to what setTimeout can hold, that keeps no process alive. */
export function startTimer(ms: number, fn: () => void): Timer {
  const t = setTimeout(fn, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  // Unref'd so that a coordinator with idle groups never keeps a process alive.
  unrefTimer(t);
  return t;
}

/** Whether two protocol lists name the same protocols with the same metadata, in order. */
export function sameProtocols(a: GroupProtocol[], b: GroupProtocol[]): boolean {
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

/** A JoinGroup answer carrying only an error. */
export function joinError(errorCode: number, memberId: string): JoinGroupResult {
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

/** A SyncGroup answer carrying only an error. */
export function syncError(errorCode: number): SyncGroupResult {
  return { errorCode, assignment: EMPTY };
}

/** A new, Empty group of generation 0 (not yet registered). */
export function createGroup(groupId: string): Group {
  return {
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
}

/** Whether `groupInstanceId` belongs to a member other than `memberId`. */
export function isFenced(group: Group, memberId: string, groupInstanceId: string | null): boolean {
  if (groupInstanceId === null) return false;
  const owner = group.staticMembers.get(groupInstanceId);
  return owner !== undefined && owner !== memberId;
}

/**
 * Whether the joining member can live with the others: same protocol type, and at least one
 * protocol every other member also supports. The member's own previous protocols do not
 * count, so a lone member may switch protocols.
 */
export function supportsProtocols(
  group: Group,
  input: JoinGroupInput,
  self: string | null,
): boolean {
  if (input.protocolType === "" || input.protocols.length === 0) return false;
  const others = [...group.members.values()].filter((m) => m.memberId !== self);
  if (others.length === 0) return true;
  if (group.protocolType !== input.protocolType) return false;
  return input.protocols.some((p) =>
    others.every((m) => m.protocols.some((q) => q.name === p.name)),
  );
}

/** Each member votes for its most preferred protocol among those all support; ties go to the leader's order. */
export function selectProtocol(group: Group): string {
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

/** The longest rebalance timeout of the group's members. */
export function maxRebalanceTimeoutMs(group: Group): number {
  let max = 0;
  for (const m of group.members.values()) max = Math.max(max, m.rebalanceTimeoutMs);
  return max;
}

/** Stops the group's rebalance timer and ends its initial delay. */
export function clearRebalanceTimer(group: Group): void {
  if (group.rebalanceTimer !== undefined) clearTimeout(group.rebalanceTimer);
  group.rebalanceTimer = undefined;
  group.initialDelay = null;
}

/** Stops a member's session timer. */
export function stopExpiry(member: Member): void {
  if (member.expiryTimer !== undefined) clearTimeout(member.expiryTimer);
  member.expiryTimer = undefined;
}

/** The JoinGroup answer of the group's current generation for `member` (members for the leader). */
export function currentJoinResult(group: Group, member: Member): JoinGroupResult {
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
export function removeMember(group: Group, member: Member): void {
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
