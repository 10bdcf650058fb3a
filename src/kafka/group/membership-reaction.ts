/**
 * What a group member does about a failed group request, as Kafka's Java consumer does: a
 * lost connection or a coordinator that moved is found again and the membership kept; only
 * the four answers that say the membership changed lead to a rejoin, each resetting what it
 * invalidates.
 */
import {
  ErrorCode,
  isRetriableCode,
  KafkaConnectionError,
  KafkaProtocolError,
} from "../protocol/errors.ts";

export type MembershipReaction =
  /** Another attempt may cure it; the member stays as it is (a coordinator still loading). */
  | "retry"
  /** No answer, or the coordinator moved or is down: find it again; member id and generation stay. */
  | "find-coordinator"
  /** The group is rebalancing: join again as the same member (REBALANCE_IN_PROGRESS). */
  | "rejoin"
  /** This generation is over: join again, keeping the member id (ILLEGAL_GENERATION). */
  | "reset-generation"
  /** The coordinator does not know this member: join as a new one (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID). */
  | "reset-member"
  /** Retrying cannot help: a configuration or permission the operator must change. */
  | "fatal";

/** Errors retrying cannot cure; the first join fails with them instead of retrying. */
const fatalCodes = new Set<number>([
  ErrorCode.UNSUPPORTED_VERSION,
  ErrorCode.INVALID_SESSION_TIMEOUT,
  ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
  ErrorCode.INVALID_GROUP_ID,
  ErrorCode.GROUP_AUTHORIZATION_FAILED,
  ErrorCode.GROUP_MAX_SIZE_REACHED,
  ErrorCode.SASL_AUTHENTICATION_FAILED,
]);

/** The reaction to a group request that failed with `error`. */
export function membershipReaction(error: unknown): MembershipReaction {
  if (error instanceof KafkaConnectionError) return "find-coordinator";
  if (!(error instanceof KafkaProtocolError)) return "retry";
  switch (error.code) {
    case ErrorCode.COORDINATOR_NOT_AVAILABLE:
    case ErrorCode.NOT_COORDINATOR:
    case ErrorCode.REQUEST_TIMED_OUT:
      return "find-coordinator";
    case ErrorCode.REBALANCE_IN_PROGRESS:
      return "rejoin";
    case ErrorCode.ILLEGAL_GENERATION:
      return "reset-generation";
    case ErrorCode.UNKNOWN_MEMBER_ID:
    case ErrorCode.FENCED_INSTANCE_ID:
      return "reset-member";
  }
  if (fatalCodes.has(error.code)) return "fatal";
  return isRetriableCode(error.code) ? "retry" : "fatal";
}

/** Whether `reaction` means joining the group again. */
export function needsRejoin(reaction: MembershipReaction): boolean {
  return reaction === "rejoin" || reaction === "reset-generation" || reaction === "reset-member";
}
