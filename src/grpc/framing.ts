/**
 * gRPC's length-prefixed messages (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"): reading
 * them off a body chunk by chunk and framing them for a write. North, west's upstream
 * client and the echo upstream all frame with these. Pure functions, no sockets.
 */
import { concatBytes } from "../bytes.ts";

/** One length-prefixed message as read off the request body. */
export interface GrpcFrame {
  compressed: boolean;
  bytes: Uint8Array;
}

/** Too large a message: the call must end with RESOURCE_EXHAUSTED. */
export class FrameTooLargeError extends Error {
  readonly length: number;

  constructor(length: number, max: number) {
    super(`message of ${length} bytes exceeds ${max}`);
    this.name = "FrameTooLargeError";
    this.length = length;
  }
}

/**
 * Splits a gRPC request body, chunk by chunk, into its length-prefixed messages. A message
 * that spans chunks is kept as its chunks and copied together once, when its last byte is in:
 * copying what was held on every chunk cost a 4 MiB message in 16 KiB chunks 300 ms.
 */
export class GrpcFrameReader {
  private readonly maxBytes: number;
  /** Chunks of an incomplete message (undefined between messages: a pending call holds no array). */
  private parts: Uint8Array[] | undefined;
  private partsBytes = 0;
  /** Bytes the incomplete message takes with its prefix; 0 while the prefix is incomplete. */
  private needBytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes of an incomplete message held back. */
  get buffered(): number {
    return this.partsBytes;
  }

  /** The messages completed by this chunk; throws FrameTooLargeError on an oversized one. */
  push(chunk: Uint8Array): GrpcFrame[] {
    let data = chunk;
    const parts = this.parts;
    if (parts !== undefined) {
      parts.push(chunk);
      this.partsBytes += chunk.byteLength;
      if (this.needBytes === 0 && this.partsBytes >= 5) {
        // The prefix is in: how long the message is decides when it is whole.
        if ((parts[0] as Uint8Array).byteLength < 5)
          parts.splice(0, parts.length, concatBytes(parts, this.partsBytes));
        this.needBytes = 5 + this.messageLength(parts[0] as Uint8Array, 0);
      }
      if (this.needBytes === 0 || this.partsBytes < this.needBytes) return [];
      data = concatBytes(parts, this.partsBytes);
      this.parts = undefined;
      this.partsBytes = 0;
      this.needBytes = 0;
    }
    const frames: GrpcFrame[] = [];
    let at = 0;
    let need = 0;
    while (data.byteLength - at >= 5) {
      const length = this.messageLength(data, at);
      if (data.byteLength - at - 5 < length) {
        need = 5 + length;
        break;
      }
      frames.push({
        compressed: ((data[at] as number) & 1) === 1,
        bytes: data.subarray(at + 5, at + 5 + length),
      });
      at += 5 + length;
    }
    if (at < data.byteLength) {
      this.parts = [data.subarray(at)];
      this.partsBytes = data.byteLength - at;
      this.needBytes = need;
    }
    return frames;
  }

  /** The length in the prefix at `at`; throws FrameTooLargeError past the limit. */
  private messageLength(data: Uint8Array, at: number): number {
    const length =
      (((data[at + 1] as number) << 24) |
        ((data[at + 2] as number) << 16) |
        ((data[at + 3] as number) << 8) |
        (data[at + 4] as number)) >>>
      0;
    if (length > this.maxBytes) throw new FrameTooLargeError(length, this.maxBytes);
    return length;
  }
}

/**
 * The 5-byte head of one uncompressed message of `length` bytes, for a writer that sends
 * it and the message together without joining them (HTTP/2 sessions of our own).
 */
export function grpcPrefix(length: number): Uint8Array {
  const head = new Uint8Array(5);
  writeLength(head, length);
  return head;
}

/** A message's length into bytes 1–4 of its head at the start of `out` (flag byte 0 left 0). */
function writeLength(out: Uint8Array, length: number): void {
  out[1] = length >>> 24;
  out[2] = (length >>> 16) & 0xff;
  out[3] = (length >>> 8) & 0xff;
  out[4] = length & 0xff;
}

/** One uncompressed length-prefixed message. */
export function grpcFrame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.byteLength);
  writeLength(out, bytes.byteLength);
  out.set(bytes, 5);
  return out;
}

/** Messages framed into one HTTP/2 write at the most (see grpcFrames). */
export const maxFramesWriteBytes = 1024 * 1024;

/**
 * Length-prefixed frames of `messages[from…]` in one buffer, as many as fit in `maxBytes`
 * (at least one); `next` is the index of the first message left out.
 */
export function grpcFrames(
  messages: readonly Uint8Array[],
  from: number,
  maxBytes: number,
): { bytes: Uint8Array; next: number } {
  let size = 0;
  let next = from;
  while (next < messages.length) {
    const frame = 5 + (messages[next] as Uint8Array).byteLength;
    if (next > from && size + frame > maxBytes) break;
    size += frame;
    next++;
  }
  if (next === from + 1) return { bytes: grpcFrame(messages[from] as Uint8Array), next };
  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let at = 0;
  for (let i = from; i < next; i++) {
    const message = messages[i] as Uint8Array;
    view.setUint32(at + 1, message.byteLength);
    bytes.set(message, at + 5);
    at += 5 + message.byteLength;
  }
  return { bytes, next };
}
