/**
 * The embedded broker's group coordinator: the consumer-group and committed-offset APIs as
 * API handlers the broker core plugs into its dispatcher. This broker is always the
 * coordinator. State lives in memory (groups/group-manager.ts); wire formats are in
 * groups/group-codecs.ts and groups/offset-codecs.ts.
 */

import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../kafka/protocol/errors.ts";
import type { Reader } from "../kafka/protocol/wire.ts";
import type { ApiHandler, RequestContext } from "./api.ts";
import {
  decodeDeleteGroupsRequest,
  decodeDescribeGroupsRequest,
  decodeFindCoordinatorRequest,
  decodeHeartbeatRequest,
  decodeJoinGroupRequest,
  decodeLeaveGroupRequest,
  decodeSyncGroupRequest,
  encodeDeleteGroupsResponse,
  encodeDescribeGroupsResponse,
  encodeFindCoordinatorResponse,
  encodeHeartbeatResponse,
  encodeJoinGroupResponse,
  encodeLeaveGroupResponse,
  encodeListGroupsResponse,
  encodeSyncGroupResponse,
} from "./groups/group-codecs.ts";
import { createGroupManager } from "./groups/group-manager.ts";
import {
  decodeOffsetCommitRequest,
  decodeOffsetFetchRequest,
  encodeOffsetCommitResponse,
  encodeOffsetFetchResponse,
} from "./groups/offset-codecs.ts";

export interface GroupCoordinatorOptions {
  /** group.initial.rebalance.delay.ms; default 0. */
  initialRebalanceDelayMs?: number;
  /** Whether commits to this topic partition are accepted. */
  partitionExists(topic: string, partition: number): boolean;
  /** Partition count of a topic, undefined if it does not exist. */
  topicPartitions(topic: string): number | undefined;
  /** Clock for heartbeat deadlines and commit timestamps; default Date.now. */
  now?: () => number;
}

export interface GroupCoordinator {
  handlers: ApiHandler[];
  /** Answers every waiting JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE and stops all timers. */
  close(): void;
}

const EMPTY = new Uint8Array(0);

/** A fault hook's error, if the request must be answered with one instead of being served. */
function injected(ctx: RequestContext): number | undefined {
  return ctx.injectedError ? ctx.injectedError : undefined;
}

/** A handler's key, name and versions: v0 to `maxVersion` (all below `firstFlexibleVersion`). */
function versions(apiKey: number, name: string, maxVersion: number, firstFlexibleVersion: number) {
  return { apiKey, name, minVersion: 0, maxVersion, firstFlexibleVersion };
}

/** Creates the group coordinator: handlers for FindCoordinator, the group APIs and offsets. */
export function createGroupCoordinator(opts: GroupCoordinatorOptions): GroupCoordinator {
  const manager = createGroupManager({
    initialRebalanceDelayMs: opts.initialRebalanceDelayMs ?? 0,
    partitionExists: opts.partitionExists,
    ...(opts.now ? { now: opts.now } : {}),
  });
  let closed = false;
  /** The error a request that needs no group state answers with: injected, closed, or none (0). */
  const coordinatorError = (ctx: RequestContext): number =>
    injected(ctx) ?? (closed ? ErrorCode.COORDINATOR_NOT_AVAILABLE : 0);

  const findCoordinator: ApiHandler = {
    ...versions(ApiKey.FindCoordinator, "FindCoordinator", 2, 3),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeFindCoordinatorRequest(req, v);
      let errorCode = coordinatorError(ctx);
      let errorMessage: string | null = null;
      if (errorCode === 0 && request.keyType !== 0) {
        // Failing fast beats a transactional client retrying against a coordinator that is not there.
        errorCode = ErrorCode.INVALID_REQUEST;
        errorMessage =
          "this broker has no transaction coordinator; use a non-transactional producer";
      }
      const res =
        errorCode === 0
          ? {
              errorCode,
              errorMessage,
              nodeId: ctx.broker.nodeId,
              host: ctx.broker.host,
              port: ctx.broker.port,
            }
          : { errorCode, errorMessage, nodeId: -1, host: "", port: -1 };
      return (w) => encodeFindCoordinatorResponse(w, v, res);
    },
  };

  const joinGroup: ApiHandler = {
    ...versions(ApiKey.JoinGroup, "JoinGroup", 5, 6),
    async handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeJoinGroupRequest(req, v);
      const error = injected(ctx);
      const res =
        error !== undefined
          ? {
              errorCode: error,
              generationId: -1,
              protocolType: null,
              protocolName: null,
              leaderId: "",
              memberId: request.memberId,
              members: [],
            }
          : await manager.joinGroup({
              ...request,
              clientId: ctx.clientId ?? "",
              // RequestContext does not carry the peer address.
              clientHost: "",
              requireKnownMemberId: v >= 4,
            });
      return (w) => encodeJoinGroupResponse(w, v, res);
    },
  };

  const syncGroup: ApiHandler = {
    ...versions(ApiKey.SyncGroup, "SyncGroup", 3, 4),
    async handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeSyncGroupRequest(req, v);
      const error = injected(ctx);
      const res =
        error !== undefined
          ? { errorCode: error, assignment: EMPTY }
          : await manager.syncGroup(request);
      return (w) => encodeSyncGroupResponse(w, v, res);
    },
  };

  const heartbeat: ApiHandler = {
    ...versions(ApiKey.Heartbeat, "Heartbeat", 3, 4),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeHeartbeatRequest(req, v);
      const errorCode = injected(ctx) ?? manager.heartbeat(request);
      return (w) => encodeHeartbeatResponse(w, v, errorCode);
    },
  };

  const leaveGroup: ApiHandler = {
    ...versions(ApiKey.LeaveGroup, "LeaveGroup", 3, 4),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeLeaveGroupRequest(req, v);
      const error = injected(ctx);
      const res =
        error !== undefined
          ? { errorCode: error, members: request.members.map((m) => ({ ...m, errorCode: error })) }
          : manager.leaveGroup(request.groupId, request.members);
      return (w) => encodeLeaveGroupResponse(w, v, res);
    },
  };

  const offsetCommit: ApiHandler = {
    ...versions(ApiKey.OffsetCommit, "OffsetCommit", 7, 8),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeOffsetCommitRequest(req, v);
      const error = injected(ctx);
      const topics =
        error !== undefined
          ? request.topics.map((t) => ({
              name: t.name,
              partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: error })),
            }))
          : manager.commitOffsets(request);
      return (w) => encodeOffsetCommitResponse(w, v, topics);
    },
  };

  const offsetFetch: ApiHandler = {
    ...versions(ApiKey.OffsetFetch, "OffsetFetch", 5, 6),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeOffsetFetchRequest(req);
      const error = injected(ctx);
      const res =
        error !== undefined
          ? {
              errorCode: error,
              topics: (request.topics ?? []).map((t) => ({
                name: t.name,
                partitions: t.partitions.map((partition) => ({
                  partition,
                  offset: -1,
                  leaderEpoch: -1,
                  metadata: "",
                  errorCode: error,
                })),
              })),
            }
          : manager.fetchOffsets(request.groupId, request.topics);
      if (v === 0 && error === undefined) {
        // v0 read offsets Kafka kept in ZooKeeper, which answered for unknown partitions with an error.
        for (const t of res.topics) {
          for (const p of t.partitions) {
            if (!opts.partitionExists(t.name, p.partition)) {
              p.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
            }
          }
        }
      }
      return (w) => encodeOffsetFetchResponse(w, v, res);
    },
  };

  const describeGroups: ApiHandler = {
    ...versions(ApiKey.DescribeGroups, "DescribeGroups", 4, 5),
    handle(req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const request = decodeDescribeGroupsRequest(req, v);
      const error = injected(ctx);
      const groups = request.groupIds.map((groupId) =>
        error !== undefined
          ? {
              errorCode: error,
              groupId,
              state: "Dead" as const,
              protocolType: "",
              protocolName: "",
              members: [],
            }
          : manager.describeGroup(groupId),
      );
      return (w) => encodeDescribeGroupsResponse(w, v, groups, request.includeAuthorizedOperations);
    },
  };

  const listGroups: ApiHandler = {
    ...versions(ApiKey.ListGroups, "ListGroups", 2, 3),
    handle(_req: Reader, ctx: RequestContext) {
      const v = ctx.apiVersion;
      const errorCode = coordinatorError(ctx);
      const groups = errorCode === 0 ? manager.listGroups() : [];
      return (w) => encodeListGroupsResponse(w, v, errorCode, groups);
    },
  };

  const deleteGroups: ApiHandler = {
    ...versions(ApiKey.DeleteGroups, "DeleteGroups", 1, 2),
    handle(req: Reader, ctx: RequestContext) {
      const groupIds = decodeDeleteGroupsRequest(req);
      const error = injected(ctx);
      const results = groupIds.map((groupId) => ({
        groupId,
        errorCode: error ?? manager.deleteGroup(groupId),
      }));
      return (w) => encodeDeleteGroupsResponse(w, results);
    },
  };

  return {
    handlers: [
      findCoordinator,
      joinGroup,
      syncGroup,
      heartbeat,
      leaveGroup,
      offsetCommit,
      offsetFetch,
      describeGroups,
      listGroups,
      deleteGroups,
    ],
    close() {
      closed = true;
      manager.close();
    },
  };
}
