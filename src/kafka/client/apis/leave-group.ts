/** LeaveGroup v0–v2: a member leaves, so the group rebalances without waiting for its session. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export const leaveGroupApi: KafkaApi<{ groupId: string; memberId: string }, { error: number }> = {
  key: ApiKey.LeaveGroup,
  name: "LeaveGroup",
  minVersion: 0,
  maxVersion: 2,
  writeRequest(w, _version, req) {
    w.string(req.groupId).string(req.memberId);
  },
  readResponse(r, version) {
    if (version >= 1) r.int32(); // throttle
    return { error: r.int16() };
  },
};
