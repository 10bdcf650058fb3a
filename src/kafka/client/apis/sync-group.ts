/** SyncGroup v1–v3: the leader hands out the assignment; every member gets its own. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface SyncGroupRequest {
  groupId: string;
  generation: number;
  memberId: string;
  /** The leader's plan (member id, assignment); empty from the other members. */
  assignments: readonly (readonly [string, Uint8Array])[];
}

export interface SyncGroupResponse {
  error: number;
  /** This member's assignment (empty when none, or in error answers). */
  assignment: Uint8Array;
}

export const syncGroupApi: KafkaApi<SyncGroupRequest, SyncGroupResponse> = {
  key: ApiKey.SyncGroup,
  name: "SyncGroup",
  minVersion: 1,
  maxVersion: 3,
  writeRequest(w, version, req) {
    w.string(req.groupId).int32(req.generation).string(req.memberId);
    if (version >= 3) w.nullableString(null); // group instance id
    w.array(req.assignments, (w, [member, bytes]) => w.string(member).bytes(bytes));
  },
  readResponse(r) {
    r.int32(); // throttle
    const error = r.int16();
    return { error, assignment: r.nullableBytes() ?? new Uint8Array(0) };
  },
};
