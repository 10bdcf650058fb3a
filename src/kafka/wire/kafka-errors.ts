/**
 * The two ways a Kafka request fails for the gateway's client: no broker answered
 * (`KafkaConnectionError`; calls answer UNAVAILABLE, SPEC §5) or a broker answered with an
 * error code (`KafkaProtocolError`, with whether retrying can help).
 */

/** No answer: refused, reset, closed or timed out. */
export class KafkaConnectionError extends Error {
  override name = "KafkaConnectionError";
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Error codes a retry (after a metadata refresh) can cure. */
const retriableCodes = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION (a topic being created, or metadata behind)
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_OR_FOLLOWER
  7, // REQUEST_TIMED_OUT
  13, // NETWORK_EXCEPTION
  14, // COORDINATOR_LOAD_IN_PROGRESS
  15, // COORDINATOR_NOT_AVAILABLE
  16, // NOT_COORDINATOR
  19, // NOT_ENOUGH_REPLICAS
  20, // NOT_ENOUGH_REPLICAS_AFTER_APPEND
  56, // KAFKA_STORAGE_ERROR
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
  78, // OFFSET_NOT_AVAILABLE
  89, // THROTTLING_QUOTA_EXCEEDED
]);

/** Names for the codes an operator is likely to meet (the rest print as numbers). */
const codeNames: Record<number, string> = {
  1: "OFFSET_OUT_OF_RANGE",
  2: "CORRUPT_MESSAGE",
  3: "UNKNOWN_TOPIC_OR_PARTITION",
  5: "LEADER_NOT_AVAILABLE",
  6: "NOT_LEADER_OR_FOLLOWER",
  7: "REQUEST_TIMED_OUT",
  10: "MESSAGE_TOO_LARGE",
  13: "NETWORK_EXCEPTION",
  17: "INVALID_TOPIC_EXCEPTION",
  18: "RECORD_LIST_TOO_LARGE",
  19: "NOT_ENOUGH_REPLICAS",
  20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
  21: "INVALID_REQUIRED_ACKS",
  29: "TOPIC_AUTHORIZATION_FAILED",
  31: "CLUSTER_AUTHORIZATION_FAILED",
  33: "UNSUPPORTED_SASL_MECHANISM",
  34: "ILLEGAL_SASL_STATE",
  35: "UNSUPPORTED_VERSION",
  58: "SASL_AUTHENTICATION_FAILED",
  74: "FENCED_LEADER_EPOCH",
  75: "UNKNOWN_LEADER_EPOCH",
  87: "INVALID_RECORD",
};

/** The name of a Kafka error code, e.g. "NOT_LEADER_OR_FOLLOWER (6)". */
export function kafkaCodeName(code: number): string {
  const name = codeNames[code];
  return name ? `${name} (${code})` : `error ${code}`;
}

/** A broker answered with an error code. */
export class KafkaProtocolError extends Error {
  override name = "KafkaProtocolError";
  readonly code: number;
  readonly retriable: boolean;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
    this.retriable = retriableCodes.has(code);
  }
}

/** Whether retrying after a metadata refresh may cure `code`. */
export function isRetriableCode(code: number): boolean {
  return retriableCodes.has(code);
}
