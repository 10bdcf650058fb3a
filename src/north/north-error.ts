/**
 * The one place where north's failures become gRPC statuses (docs/contract.md: North). Each mapping says
 * why that code is the one a client can act on.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ProduceError } from "../kafka/request-producer.ts";

/** A failed request produce as the call's status. */
export function connectErrorFromProduce(error: unknown): ConnectError {
  if (error instanceof ProduceError && error.unreachable) {
    // The cluster could not be reached: retrying later may succeed, which UNAVAILABLE says.
    return new ConnectError(`kafka unavailable: ${error.message}`, Code.Unavailable);
  }
  // Kafka answered but refused the record: retrying the same call will not help.
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectError(`kafka produce failed: ${message}`, Code.Internal);
}

/** A failed reply reader as the status of the calls that waited on it. */
export function connectErrorFromReader(error: Error): ConnectError {
  // The reply may exist in Kafka, but this gateway can no longer read it.
  return new ConnectError(`reply reader failed: ${error.message}`, Code.Internal);
}

/** Why a call's handler signal aborted (deadline, client cancel, server shutdown). */
export function connectErrorFromAbort(reason: unknown): ConnectError {
  // connect-es aborts with a ConnectError for deadlines (DEADLINE_EXCEEDED) and for the
  // shutdown signal we abort with; anything else is the client going away.
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("call cancelled by the client", Code.Canceled);
}

/** The default reply timeout (docs/contract.md: difference 7) ran out before the reply ended. */
export function replyTimeoutError(timeoutMs: number): ConnectError {
  // The same code as a client deadline: the client could not have known north's default.
  return new ConnectError(`no reply within ${timeoutMs} ms`, Code.DeadlineExceeded);
}

/** No grpc-kafka route matched the call. */
export function noRouteError(path: string): ConnectError {
  // The method is served, so UNIMPLEMENTED would mislead; the gateway's config is at fault.
  return new ConnectError(`no route for ${path}`, Code.Internal);
}
