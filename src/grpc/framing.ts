/**
 * gRPC's length-prefixed messages (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"): reading
 * them off a body chunk by chunk and framing them for a write. North, west's upstream
 * client and the echo upstream all frame with these. Pure functions, no sockets.
 */

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

/** Splits a gRPC request body, chunk by chunk, into its length-prefixed messages. */
export class GrpcFrameReader {
  private readonly maxBytes: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes of an incomplete message held back. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** The messages completed by this chunk; throws FrameTooLargeError on an oversized one. */
  push(chunk: Uint8Array): GrpcFrame[] {
    let data = chunk;
    if (this.pendingBytes > 0) {
      data = concat(this.pending, this.pendingBytes, chunk);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const frames: GrpcFrame[] = [];
    let at = 0;
    while (data.byteLength - at >= 5) {
      const view = new DataView(data.buffer, data.byteOffset + at, 5);
      const length = view.getUint32(1);
      if (length > this.maxBytes) throw new FrameTooLargeError(length, this.maxBytes);
      if (data.byteLength - at - 5 < length) break;
      frames.push({
        compressed: (view.getUint8(0) & 1) === 1,
        bytes: data.subarray(at + 5, at + 5 + length),
      });
      at += 5 + length;
    }
    if (at < data.byteLength) {
      this.pending.push(data.subarray(at));
      this.pendingBytes = data.byteLength - at;
    }
    return frames;
  }
}

function concat(parts: Uint8Array[], partsBytes: number, last: Uint8Array): Uint8Array {
  const out = new Uint8Array(partsBytes + last.byteLength);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  out.set(last, at);
  return out;
}

/** One uncompressed length-prefixed message. */
export function grpcFrame(bytes: Uint8Array): Uint8Array {
  const length = bytes.byteLength;
  const out = new Uint8Array(5 + length);
  out[1] = length >>> 24;
  out[2] = (length >>> 16) & 0xff;
  out[3] = (length >>> 8) & 0xff;
  out[4] = length & 0xff;
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
