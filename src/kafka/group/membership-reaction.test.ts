import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  KafkaAnswerError,
  KafkaConnectionError,
  KafkaProtocolError,
} from "../protocol/errors.ts";
import { membershipReaction, needsRejoin } from "./membership-reaction.ts";

const refused = (code: number) => new KafkaProtocolError(code, "refused");

describe("membershipReaction", () => {
  it("finds the coordinator again, keeping the membership, when it does not answer or moved", () => {
    expect(membershipReaction(new KafkaConnectionError("ECONNREFUSED"))).toBe("find-coordinator");
    expect(membershipReaction(new KafkaAnswerError("answer names partition -1"))).toBe(
      "find-coordinator",
    );
    for (const code of [
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
      ErrorCode.NOT_COORDINATOR,
      ErrorCode.REQUEST_TIMED_OUT,
    ]) {
      expect(membershipReaction(refused(code))).toBe("find-coordinator");
    }
    expect(membershipReaction(refused(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS))).toBe("retry");
  });

  it("rejoins only for the four answers that say the membership changed", () => {
    expect(membershipReaction(refused(ErrorCode.REBALANCE_IN_PROGRESS))).toBe("rejoin");
    expect(membershipReaction(refused(ErrorCode.ILLEGAL_GENERATION))).toBe("reset-generation");
    expect(membershipReaction(refused(ErrorCode.UNKNOWN_MEMBER_ID))).toBe("reset-member");
    expect(membershipReaction(refused(ErrorCode.FENCED_INSTANCE_ID))).toBe("reset-member");
    const rejoining = Object.values(ErrorCode).filter((code) =>
      needsRejoin(membershipReaction(refused(code))),
    );
    expect(rejoining.sort((a, b) => a - b)).toEqual([22, 25, 27, 82]);
  });

  it("calls configuration and permission errors fatal", () => {
    for (const code of [
      ErrorCode.INVALID_SESSION_TIMEOUT,
      ErrorCode.GROUP_AUTHORIZATION_FAILED,
      ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
      ErrorCode.UNSUPPORTED_VERSION,
    ]) {
      expect(membershipReaction(refused(code))).toBe("fatal");
    }
  });
});
