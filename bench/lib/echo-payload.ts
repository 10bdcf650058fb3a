/**
 * Echo request payloads of an exact size, and their gRPC framing for load generators
 * that speak raw HTTP/2 (h2load).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type EchoRequest, EchoRequestSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";

/** Bytes a protobuf varint of `n` takes. */
function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

/**
 * The `message` text whose EchoRequest (and EchoResponse) encodes to `bytes` bytes: exactly,
 * except where a length-varint step makes that size impossible (then one byte less).
 */
export function echoTextOfSize(bytes: number, prefix = ""): string {
  // One tag byte, the length varint, then the text (ASCII, so chars = bytes).
  let textLength = bytes - 2;
  while (textLength > 0 && 1 + varintLength(textLength) + textLength > bytes) textLength--;
  if (textLength < prefix.length) throw new Error(`${bytes} bytes cannot hold prefix "${prefix}"`);
  return prefix + "x".repeat(textLength - prefix.length);
}

/** The protobuf bytes of an EchoRequest. */
export function echoRequestBytes(message: string): Uint8Array {
  const request: EchoRequest = create(EchoRequestSchema, { message });
  return toBinary(EchoRequestSchema, request);
}

/** A gRPC length-prefixed message: flag byte 0 (uncompressed), 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.byteLength);
  new DataView(frame.buffer).setUint32(1, message.byteLength);
  frame.set(message, 5);
  return frame;
}
