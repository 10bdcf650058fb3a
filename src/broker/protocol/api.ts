/**
 * The seam between the broker's connection/dispatch layer and the modules that implement
 * Kafka APIs. The dispatcher reads the request header, picks the handler for the API key,
 * checks the version against the handler's range, and writes the response header
 * (correlation id, plus an empty tagged-field section for flexible versions except
 * ApiVersions); the handler reads the request body and writes the response body.
 */
import type { Reader, Writer } from "./wire.ts";

/** Facts about this broker that API handlers need (FindCoordinator, Metadata). */
export interface BrokerInfo {
  nodeId: number;
  host: string;
  port: number;
  clusterId: string;
}

export interface RequestContext {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
  /** Whether this request/response version uses the flexible (compact, tagged) encoding. */
  flexible: boolean;
  /** A per-connection id, stable for the connection's life. */
  connectionId: number;
  /** Set by a fault hook: answer with this Kafka error code wherever the response has one. */
  injectedError?: number;
  broker: BrokerInfo;
  /** Aborted when the connection closes or the broker stops (ends long waits early). */
  signal?: AbortSignal;
  /** Closes the connection once this request's response is written (failed SASL). */
  closeAfterResponse?: () => void;
}

/** Writes a response body. */
export type ResponseBody = (w: Writer) => void;

export interface ApiHandler {
  apiKey: number;
  /** Human name, for logs: "JoinGroup". */
  name: string;
  minVersion: number;
  maxVersion: number;
  /** First version that uses the flexible encoding (Infinity if none supported). */
  firstFlexibleVersion: number;
  /**
   * Reads the body from `req` (positioned after the request header) and answers; `null`
   * means "send no response at all" (Produce with acks=0).
   */
  handle(req: Reader, ctx: RequestContext): ResponseBody | null | Promise<ResponseBody | null>;
}

/** Kafka error codes used by the broker. */
export const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  MESSAGE_TOO_LARGE: 10,
  NETWORK_EXCEPTION: 13,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  NOT_ENOUGH_REPLICAS: 19,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  INVALID_COMMIT_OFFSET_SIZE: 28,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  UNSUPPORTED_SASL_MECHANISM: 33,
  ILLEGAL_SASL_STATE: 34,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REQUEST: 42,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  SASL_AUTHENTICATION_FAILED: 58,
  UNKNOWN_PRODUCER_ID: 59,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  MEMBER_ID_REQUIRED: 79,
  INVALID_RECORD: 87,
  UNSTABLE_OFFSET_COMMIT: 88,
} as const;

/** API keys. */
export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  DeleteRecords: 21,
  InitProducerId: 22,
  DescribeConfigs: 32,
  SaslAuthenticate: 36,
  DeleteGroups: 42,
} as const;
