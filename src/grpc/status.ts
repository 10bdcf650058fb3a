/**
 * gRPC status on the wire: OK (which Connect's `Code` leaves out), `grpc-message` text
 * encoding and decoding (percent-encoded UTF-8), and reading a status from trailers.
 */
import { Code } from "@connectrpc/connect";

/** gRPC's OK, which Connect's `Code` leaves out (it only lists errors). */
export const statusOk = 0;

/** A gRPC status code: OK or one of Connect's error codes. */
export type GrpcStatus = Code | typeof statusOk;

/** `grpc-message` text: percent-encodes what the spec does not allow as is (and `%`). */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = "";
  for (const byte of new TextEncoder().encode(message)) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** A `grpc-message` as text: percent-decoded, or as received when it is not valid encoding. */
export function decodeGrpcMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** `grpc-status` and the decoded `grpc-message` of a trailer (or a trailers-only header). */
export function statusFromTrailer(trailer: { get(name: string): string | null | undefined }): {
  code: number;
  message: string | undefined;
} {
  const text = trailer.get("grpc-status") ?? "";
  const code = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(code >= 0 && code <= 16)) {
    return { code: Code.Internal, message: `invalid grpc-status: ${text}` };
  }
  const raw = trailer.get("grpc-message");
  return { code, message: raw ? decodeGrpcMessage(raw) : undefined };
}
