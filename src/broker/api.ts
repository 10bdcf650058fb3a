/**
 * The seam between the broker's connection/dispatch layer and the modules that implement
 * Kafka APIs. The dispatcher reads the request header, picks the handler for the API key,
 * checks the version against the handler's range, and writes the response header
 * (correlation id, plus an empty tagged-field section for flexible versions except
 * ApiVersions); the handler reads the request body and writes the response body.
 */
import type { Reader, Writer } from "../kafka/protocol/wire.ts";
import type { PartitionFaults } from "./broker-faults.ts";

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
  /** Set by fault hooks that act on single partitions of an answer (tests only). */
  partitionFaults?: PartitionFaults;
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
