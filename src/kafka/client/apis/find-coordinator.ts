/** FindCoordinator v1–v2: which broker coordinates a consumer group. */
import { ApiKey } from "../../protocol/api-keys.ts";
import type { KafkaApi } from "./kafka-api.ts";

export interface FindCoordinatorResponse {
  error: number;
  message: string | null;
  node: number;
  /** Null or empty in error answers. */
  host: string | null;
  port: number;
}

export const findCoordinatorApi: KafkaApi<{ groupId: string }, FindCoordinatorResponse> = {
  key: ApiKey.FindCoordinator,
  name: "FindCoordinator",
  minVersion: 1,
  maxVersion: 2,
  writeRequest(w, _version, { groupId }) {
    w.string(groupId).int8(0); // key type: group
  },
  readResponse(r) {
    r.int32(); // throttle
    const error = r.int16();
    const message = r.nullableString();
    const node = r.int32();
    // Error answers carry no host; some brokers write it as null.
    const host = r.nullableString();
    const port = r.int32();
    return { error, message, node, host, port };
  },
};
