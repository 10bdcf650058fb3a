/** DeleteTopics (v0-v3): removes topics and their data at once. */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { ApiHandler } from "../api.ts";
import type { BrokerState } from "../broker-state.ts";

/** The DeleteTopics handler. */
export function createDeleteTopicsHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.DeleteTopics,
    name: "DeleteTopics",
    minVersion: 0,
    maxVersion: 3,
    firstFlexibleVersion: 4,
    handle(req, ctx) {
      const names = req.array((r) => r.string());
      req.int32(); // timeout
      const results = names.map((name) => {
        if (ctx.injectedError !== undefined) return { name, errorCode: ctx.injectedError };
        if (!state.topics.delete(name)) {
          return { name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
        }
        state.log(`deleted topic ${name}`);
        return { name, errorCode: ErrorCode.NONE };
      });
      const version = ctx.apiVersion;
      return (w) => {
        if (version >= 1) w.int32(0); // throttle time
        w.array(results, (w, t) => {
          w.string(t.name).int16(t.errorCode);
        });
      };
    },
  };
}
