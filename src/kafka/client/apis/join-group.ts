/**
 * JoinGroup v2–v5. Error answers are read by their error code first: some brokers
 * (librdkafka's mock cluster) write null for the strings an error answer has no use for,
 * which the protocol only allows from v7 on.
 */
import { ApiKey } from "../../protocol/api-keys.ts";
import { KafkaAnswerError } from "../../protocol/errors.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  /** "" on the first join. */
  memberId: string;
  protocolType: string;
  /** Assignor names in order of preference, each with this member's subscription. */
  protocols: readonly (readonly [string, Uint8Array])[];
}

export interface JoinGroupMember {
  memberId: string;
  metadata: Uint8Array;
}

export interface JoinGroupResponse {
  error: number;
  generation: number;
  /** The assignor the group agreed on ("" in error answers). */
  protocol: string;
  leader: string;
  /** This member's id (with MEMBER_ID_REQUIRED: the id to join again with). */
  memberId: string;
  /** Every member with its subscription; the leader's answer only. */
  members: JoinGroupMember[];
}

export const joinGroupApi: KafkaApi<JoinGroupRequest, JoinGroupResponse> = {
  key: ApiKey.JoinGroup,
  name: "JoinGroup",
  minVersion: 2,
  maxVersion: 5,
  writeRequest(w, version, req) {
    w.string(req.groupId).int32(req.sessionTimeoutMs).int32(req.rebalanceTimeoutMs);
    w.string(req.memberId);
    if (version >= 5) w.nullableString(null); // no group instance id: a dynamic member
    w.string(req.protocolType);
    w.array(req.protocols, (w, [name, metadata]) => w.string(name).bytes(metadata));
  },
  readResponse(r, version) {
    r.int32(); // throttle
    const error = r.int16();
    const generation = r.int32();
    const protocol = r.nullableString();
    const leader = r.nullableString();
    const memberId = r.nullableString();
    const members = r.array((r) => {
      const id = r.nullableString() ?? "";
      if (version >= 5) r.nullableString(); // group instance id
      return { memberId: id, metadata: r.nullableBytes() ?? new Uint8Array(0) };
    });
    if (error === 0 && (protocol === null || leader === null || memberId === null)) {
      throw new KafkaAnswerError("JoinGroup answer without protocol, leader or member id");
    }
    return {
      error,
      generation,
      protocol: protocol ?? "",
      leader: leader ?? "",
      memberId: memberId ?? "",
      members,
    };
  },
};
