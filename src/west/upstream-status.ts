/**
 * How an upstream call's failures become gRPC codes: an HTTP status without grpc-status, an
 * RST_STREAM code, or a stream error (and whether that error means the upstream was never
 * reached, so a retry is safe). The mapping follows gRPC's documents and connect-node.
 */
import { Code } from "@connectrpc/connect";
import { h2Errors } from "../h2/client-session.ts";

/** gRPC's HTTP-status-to-code mapping (http-grpc-status-mapping.md). */
export function codeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

/** An RST_STREAM code as a gRPC code (PROTOCOL-HTTP2.md, "Errors"). */
export function codeFromResetCode(rst: number): Code {
  switch (rst) {
    case h2Errors.refusedStream:
      return Code.Unavailable;
    case h2Errors.cancel:
      return Code.Canceled;
    case h2Errors.enhanceYourCalm:
      return Code.ResourceExhausted;
    case h2Errors.inadequateSecurity:
    case h2Errors.http11Required:
      return Code.PermissionDenied;
    default:
      return Code.Internal;
  }
}

// Errors that mean the upstream was never reached (connect-node treats the same as
// UNAVAILABLE); a reset or broken connection after that may have run the call.
const unreachableErrors = new Set([
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ERR_HTTP2_GOAWAY_SESSION",
]);

/**
 * A stream error as a gRPC code, and whether the upstream was certainly not reached (no
 * response yet and the connection could not be made). Mirrors connect-node's mapping:
 * a broken connection is ABORTED, a refused one UNAVAILABLE.
 */
export function statusFromStreamError(
  err: unknown,
  answered: boolean,
): { code: Code; unreachable: boolean; reason?: string } {
  let current: unknown = err;
  for (let depth = 0; current instanceof Error && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && unreachableErrors.has(code) && !answered) {
      // The connection's own error says why (a wrapper only says the stream was cancelled).
      return { code: Code.Unavailable, unreachable: true, reason: current.message };
    }
    if (code === "ECONNRESET") return { code: Code.Aborted, unreachable: false };
    current = (current as { cause?: unknown }).cause;
  }
  return { code: Code.Internal, unreachable: false };
}
