/**
 * InitProducerId (v0-v1): hands idempotent producers a fresh producer id with epoch 0.
 * Transactions are not supported, so a transactional id gets an id like anyone else.
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { ApiHandler } from "../api.ts";
import type { BrokerState } from "../broker-state.ts";

/** The InitProducerId handler. */
export function createInitProducerIdHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.InitProducerId,
    name: "InitProducerId",
    minVersion: 0,
    maxVersion: 1,
    firstFlexibleVersion: 2,
    handle(req, ctx) {
      req.nullableString(); // transactional id
      req.int32(); // transaction timeout
      const errorCode = ctx.injectedError ?? ErrorCode.NONE;
      const producerId = errorCode === ErrorCode.NONE ? state.nextProducerId++ : -1;
      return (w) => {
        w.int32(0); // throttle time
        w.int16(errorCode);
        w.int64(producerId);
        w.int16(errorCode === ErrorCode.NONE ? 0 : -1);
      };
    },
  };
}
