/**
 * Request decoders and response encoders for the group membership and admin APIs, in their
 * classic (non-flexible) versions: FindCoordinator 0-2, JoinGroup 0-5, SyncGroup 0-3,
 * Heartbeat 0-3, LeaveGroup 0-3, DescribeGroups 0-4, ListGroups 0-2, DeleteGroups 0-1.
 * Byte fields are copied out of the request buffer, which the connection may reuse.
 */
import type { Reader, Writer } from "../../kafka/protocol/wire.ts";
import type {
  DescribedGroup,
  GroupProtocol,
  HeartbeatInput,
  JoinGroupResult,
  LeaveGroupResult,
  LeavingMember,
  ListedGroup,
  SyncGroupInput,
  SyncGroupResult,
} from "./group-api.ts";

/** Kafka's "authorized operations were not asked for" marker (KIP-430). */
const AUTHORIZED_OPERATIONS_OMITTED = -2147483648;
// READ (3), DELETE (6) and DESCRIBE (8): all a group allows, as this broker has no ACLs.
const GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8);

export interface FindCoordinatorRequest {
  key: string;
  /** 0 = group, 1 = transaction. */
  keyType: number;
}

export interface FindCoordinatorResponse {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

/** FindCoordinator request, v0-2. */
export function decodeFindCoordinatorRequest(r: Reader, version: number): FindCoordinatorRequest {
  const key = r.string();
  const keyType = version >= 1 ? r.int8() : 0;
  return { key, keyType };
}

/** FindCoordinator response, v0-2. */
export function encodeFindCoordinatorResponse(
  w: Writer,
  version: number,
  res: FindCoordinatorResponse,
): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode);
  if (version >= 1) w.nullableString(res.errorMessage);
  w.int32(res.nodeId).string(res.host).int32(res.port);
}

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: GroupProtocol[];
}

/** JoinGroup request, v0-5 (v0 has no rebalance timeout: the session timeout stands in). */
export function decodeJoinGroupRequest(r: Reader, version: number): JoinGroupRequest {
  const groupId = r.string();
  const sessionTimeoutMs = r.int32();
  const rebalanceTimeoutMs = version >= 1 ? r.int32() : sessionTimeoutMs;
  const memberId = r.string();
  const groupInstanceId = version >= 5 ? r.nullableString() : null;
  const protocolType = r.string();
  const protocols = r.array((p) => ({ name: p.string(), metadata: p.bytes().slice() }));
  return {
    groupId,
    sessionTimeoutMs,
    rebalanceTimeoutMs,
    memberId,
    groupInstanceId,
    protocolType,
    protocols,
  };
}

/** JoinGroup response, v0-5. */
export function encodeJoinGroupResponse(w: Writer, version: number, res: JoinGroupResult): void {
  if (version >= 2) w.int32(0);
  w.int16(res.errorCode)
    .int32(res.generationId)
    .string(res.protocolName ?? "")
    .string(res.leaderId)
    .string(res.memberId);
  w.array(res.members, (m, member) => {
    m.string(member.memberId);
    if (version >= 5) m.nullableString(member.groupInstanceId);
    m.bytes(member.metadata);
  });
}

/** SyncGroup request, v0-3. */
export function decodeSyncGroupRequest(r: Reader, version: number): SyncGroupInput {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  const groupInstanceId = version >= 3 ? r.nullableString() : null;
  const assignments = r.array((a) => ({ memberId: a.string(), assignment: a.bytes().slice() }));
  return { groupId, generationId, memberId, groupInstanceId, assignments };
}

/** SyncGroup response, v0-3. */
export function encodeSyncGroupResponse(w: Writer, version: number, res: SyncGroupResult): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode).bytes(res.assignment);
}

/** Heartbeat request, v0-3. */
export function decodeHeartbeatRequest(r: Reader, version: number): HeartbeatInput {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  const groupInstanceId = version >= 3 ? r.nullableString() : null;
  return { groupId, generationId, memberId, groupInstanceId };
}

/** Heartbeat response, v0-3. */
export function encodeHeartbeatResponse(w: Writer, version: number, errorCode: number): void {
  if (version >= 1) w.int32(0);
  w.int16(errorCode);
}

export interface LeaveGroupRequest {
  groupId: string;
  members: LeavingMember[];
}

/** LeaveGroup request, v0-3 (v3 leaves a batch of members, possibly by group.instance.id). */
export function decodeLeaveGroupRequest(r: Reader, version: number): LeaveGroupRequest {
  const groupId = r.string();
  if (version <= 2) return { groupId, members: [{ memberId: r.string(), groupInstanceId: null }] };
  const members = r.array((m) => ({ memberId: m.string(), groupInstanceId: m.nullableString() }));
  return { groupId, members };
}

/** LeaveGroup response, v0-3; before v3 the one member's error is the response's error. */
export function encodeLeaveGroupResponse(w: Writer, version: number, res: LeaveGroupResult): void {
  if (version >= 1) w.int32(0);
  if (version <= 2) {
    const first = res.members[0]?.errorCode ?? 0;
    w.int16(res.errorCode !== 0 ? res.errorCode : first);
    return;
  }
  w.int16(res.errorCode);
  w.array(res.members, (m, member) => {
    m.string(member.memberId).nullableString(member.groupInstanceId).int16(member.errorCode);
  });
}

export interface DescribeGroupsRequest {
  groupIds: string[];
  includeAuthorizedOperations: boolean;
}

/** DescribeGroups request, v0-4. */
export function decodeDescribeGroupsRequest(r: Reader, version: number): DescribeGroupsRequest {
  const groupIds = r.array((g) => g.string());
  const includeAuthorizedOperations = version >= 3 ? r.bool() : false;
  return { groupIds, includeAuthorizedOperations };
}

/** DescribeGroups response, v0-4. */
export function encodeDescribeGroupsResponse(
  w: Writer,
  version: number,
  groups: DescribedGroup[],
  includeAuthorizedOperations: boolean,
): void {
  if (version >= 1) w.int32(0);
  w.array(groups, (g, group) => {
    g.int16(group.errorCode)
      .string(group.groupId)
      .string(group.state)
      .string(group.protocolType)
      .string(group.protocolName);
    g.array(group.members, (m, member) => {
      m.string(member.memberId);
      if (version >= 4) m.nullableString(member.groupInstanceId);
      m.string(member.clientId)
        .string(member.clientHost)
        .bytes(member.metadata)
        .bytes(member.assignment);
    });
    if (version >= 3) {
      g.int32(
        includeAuthorizedOperations ? GROUP_AUTHORIZED_OPERATIONS : AUTHORIZED_OPERATIONS_OMITTED,
      );
    }
  });
}

/** ListGroups response, v0-2 (the request has no body). */
export function encodeListGroupsResponse(
  w: Writer,
  version: number,
  errorCode: number,
  groups: ListedGroup[],
): void {
  if (version >= 1) w.int32(0);
  w.int16(errorCode);
  w.array(groups, (g, group) => {
    g.string(group.groupId).string(group.protocolType);
  });
}

/** DeleteGroups request, v0-1. */
export function decodeDeleteGroupsRequest(r: Reader): string[] {
  return r.array((g) => g.string());
}

/** DeleteGroups response, v0-1. */
export function encodeDeleteGroupsResponse(
  w: Writer,
  results: { groupId: string; errorCode: number }[],
): void {
  w.int32(0);
  w.array(results, (g, result) => {
    g.string(result.groupId).int16(result.errorCode);
  });
}
