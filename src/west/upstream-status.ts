/**
 * How an upstream call's failures become gRPC codes: an HTTP status without grpc-status, an
 * RST_STREAM code, or a stream error (and whether that error means the upstream was never
 * reached, so a retry is safe). The mapping follows gRPC's documents and connect-node.
 */
import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";

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
  const c = http2.constants;
  switch (rst) {
    case c.NGHTTP2_REFUSED_STREAM:
      return Code.Unavailable;
    case c.NGHTTP2_CANCEL:
      return Code.Canceled;
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      return Code.ResourceExhausted;
    case c.NGHTTP2_INADEQUATE_SECURITY:
    case c.NGHTTP2_HTTP_1_1_REQUIRED:
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
  "ERR_HTTP2_INVALID_SESSION",
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
  let rstCode: number | undefined;
  for (let depth = 0; current instanceof Error && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && unreachableErrors.has(code) && !answered) {
      // The connection's own error says why (a wrapper only says the stream was cancelled).
      return { code: Code.Unavailable, unreachable: true, reason: current.message };
    }
    if (code === "ECONNRESET" || code === "ERR_STREAM_DESTROYED") {
      return { code: Code.Aborted, unreachable: false };
    }
    const match = /NGHTTP2_\w+|code (\d+)/.exec(current.message);
    if (code === "ERR_HTTP2_STREAM_ERROR" && match) {
      const byName = (http2.constants as unknown as Record<string, number | undefined>)[match[0]];
      rstCode = match[1] !== undefined ? Number(match[1]) : byName;
    }
    current = (current as { cause?: unknown }).cause;
  }
  if (rstCode !== undefined) {
    return {
      code: codeFromResetCode(rstCode),
      unreachable: rstCode === http2.constants.NGHTTP2_REFUSED_STREAM,
    };
  }
  return { code: Code.Internal, unreachable: false };
}
