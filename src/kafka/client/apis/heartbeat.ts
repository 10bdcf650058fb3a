/** Heartbeat v0–v3: a member says it is alive; the answer says whether to rejoin. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface GroupMemberRef {
  groupId: string;
  generation: number;
  memberId: string;
}

export const heartbeatApi: KafkaApi<GroupMemberRef, { error: number }> = {
  key: ApiKey.Heartbeat,
  name: "Heartbeat",
  minVersion: 0,
  maxVersion: 3,
  writeRequest(w, version, req) {
    w.string(req.groupId).int32(req.generation).string(req.memberId);
    if (version >= 3) w.nullableString(null); // group instance id
  },
  readResponse(r, version) {
    if (version >= 1) r.int32(); // throttle
    return { error: r.int16() };
  },
};
