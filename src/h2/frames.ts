/**
 * HTTP/2 framing (RFC 9113 section 4 and 6) shared by the gateway's client session (west's
 * upstream calls) and server session (north's front door): frame and setting numbers, error
 * codes, reading frames off a byte stream, and the per-turn frame queue that leaves in one
 * socket write.
 */

export const frameType = {
  data: 0,
  headers: 1,
  rstStream: 3,
  settings: 4,
  pushPromise: 5,
  ping: 6,
  goaway: 7,
  windowUpdate: 8,
  continuation: 9,
} as const;

export const flagEndStream = 0x1;
export const flagAck = 0x1;
export const flagEndHeaders = 0x4;
export const flagPadded = 0x8;
export const flagPriority = 0x20;

/** HTTP/2 error codes (RFC 9113 section 7) used here. */
export const h2Errors = {
  noError: 0,
  protocolError: 1,
  internalError: 2,
  flowControlError: 3,
  streamClosed: 5,
  frameSizeError: 6,
  refusedStream: 7,
  cancel: 8,
  compressionError: 9,
  enhanceYourCalm: 11,
  inadequateSecurity: 12,
  http11Required: 13,
} as const;

export const setting = {
  headerTableSize: 1,
  enablePush: 2,
  maxConcurrentStreams: 3,
  initialWindowSize: 4,
  maxFrameSize: 5,
  maxHeaderListSize: 6,
} as const;

export const defaultWindow = 65_535;
export const maxWindow = 0x7fff_ffff;
/** The frame size this side accepts (the protocol's default; never announced larger). */
export const maxFrameIn = 16_384;
export const connectionPreface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const empty = new Uint8Array(0);

/** A connection error with its HTTP/2 code. */
export class ConnectionError extends Error {
  readonly h2Code: number;
  constructor(h2Code: number, message: string) {
    super(message);
    this.h2Code = h2Code;
  }
}

/** A DATA or HEADERS payload without its padding. */
export function unpad(flags: number, payload: Buffer): Buffer {
  if (!(flags & flagPadded)) return payload;
  if (payload.length < 1) throw new ConnectionError(h2Errors.protocolError, "short padded frame");
  const padding = payload[0] as number;
  if (padding >= payload.length) {
    throw new ConnectionError(h2Errors.protocolError, "padding longer than the frame");
  }
  return payload.subarray(1, payload.length - padding);
}

/** A HEADERS payload's header block: padding and the priority part taken off. */
export function headerBlockOf(flags: number, payload: Buffer): Buffer {
  const block = unpad(flags, payload);
  if (!(flags & flagPriority)) return block;
  if (block.length < 5) throw new ConnectionError(h2Errors.protocolError, "short HEADERS");
  return block.subarray(5);
}

export type OnFrame = (type: number, flags: number, id: number, payload: Buffer) => void;

/**
 * Reads the whole frames in `buf` from `at`, handing each to `onFrame` (until `stop()`);
 * returns where the first incomplete frame starts. A frame longer than this side accepts is
 * a FRAME_SIZE_ERROR; `first` checks each frame's type before its payload is read.
 */
export function readFrames(
  buf: Buffer,
  at: number,
  onFrame: OnFrame,
  stop: () => boolean,
  first?: (type: number, flags: number, at: number, buf: Buffer) => void,
): number {
  while (buf.length - at >= 9 && !stop()) {
    const type = buf[at + 3] as number;
    const flags = buf[at + 4] as number;
    first?.(type, flags, at, buf);
    const length = buf.readUIntBE(at, 3);
    if (length > maxFrameIn) {
      throw new ConnectionError(h2Errors.frameSizeError, `frame of ${length} bytes`);
    }
    if (buf.length - at < 9 + length) break;
    const id = buf.readUInt32BE(at + 5) & 0x7fff_ffff;
    const payload = buf.subarray(at + 9, at + 9 + length);
    at += 9 + length;
    onFrame(type, flags, id, payload);
  }
  return at;
}

/**
 * Reads the whole frames of a socket read's `chunk` (as `readFrames`) after `pending`, the
 * start of the frame the last read ended in: that frame is finished by copying only the
 * bytes it lacks from `chunk`, whose other frames are read where they are (joining the whole
 * chunk to it copied nearly every byte received under load once more). Returns the start of
 * an unfinished frame to keep for the next read, if any.
 */
export function readChunk(
  pending: Buffer | undefined,
  chunk: Buffer,
  onFrame: OnFrame,
  stop: () => boolean,
  first?: (type: number, flags: number, at: number, buf: Buffer) => void,
): Buffer | undefined {
  let at = 0;
  if (pending) {
    const { joined, used } = finishFrame(pending, chunk);
    const end = readFrames(joined, 0, onFrame, stop, first);
    if (end < joined.length) return joined.subarray(end);
    at = used;
  }
  at = readFrames(chunk, at, onFrame, stop, first);
  return at < chunk.length ? chunk.subarray(at) : undefined;
}

/**
 * `pending` joined to as much of the front of `chunk` as finishes its frame; `used`: the
 * bytes of `chunk` taken (all of them when the frame is still short).
 */
function finishFrame(pending: Buffer, chunk: Buffer): { joined: Buffer; used: number } {
  let need = chunk.length;
  if (pending.length >= 9) need = 9 + pending.readUIntBE(0, 3) - pending.length;
  else if (pending.length + chunk.length >= 9) {
    const head = Buffer.concat([pending, chunk.subarray(0, 9 - pending.length)]);
    need = 9 + head.readUIntBE(0, 3) - pending.length;
  }
  const used = Math.min(need, chunk.length);
  return { joined: Buffer.concat([pending, chunk.subarray(0, used)]), used };
}

/** The settings of a SETTINGS payload, checked for what HTTP/2 forbids of the common ones. */
export function eachSetting(payload: Buffer, onSetting: (key: number, value: number) => void) {
  if (payload.length % 6 !== 0) {
    throw new ConnectionError(h2Errors.frameSizeError, "SETTINGS length not a multiple of 6");
  }
  for (let at = 0; at < payload.length; at += 6) {
    const key = payload.readUInt16BE(at);
    const value = payload.readUInt32BE(at + 2);
    if (key === setting.initialWindowSize && value > maxWindow) {
      throw new ConnectionError(h2Errors.flowControlError, "initial window too large");
    }
    if (key === setting.maxFrameSize && (value < 16_384 || value > 16_777_215)) {
      throw new ConnectionError(h2Errors.protocolError, "invalid max frame size");
    }
    onSetting(key, value);
  }
}

/** A WINDOW_UPDATE payload's increment. */
export function windowIncrement(payload: Buffer): number {
  if (payload.length !== 4) throw new ConnectionError(h2Errors.frameSizeError, "WINDOW_UPDATE");
  return payload.readUInt32BE(0) & 0x7fff_ffff;
}

/** A complete header block: its stream, its bytes, and whether it ends the stream. */
export interface HeaderBlock {
  id: number;
  block: Uint8Array;
  endStream: boolean;
}

/**
 * Header blocks as HEADERS and CONTINUATION frames bring them: a block sent in pieces is
 * gathered (at most `maxBytes`, past which the connection ends with `overCode`), and no other
 * frame may come between its pieces.
 */
export class HeaderBlocks {
  private open: { id: number; endStream: boolean; parts: Uint8Array[]; bytes: number } | undefined;
  private readonly maxBytes: number;
  private readonly overCode: number;

  constructor(maxBytes: number, overCode: number) {
    this.maxBytes = maxBytes;
    this.overCode = overCode;
  }

  /** Throws when a block is being gathered and a frame of `type` interrupts it. */
  check(type: number): void {
    if (this.open && type !== frameType.continuation) {
      throw new ConnectionError(h2Errors.protocolError, "header block interrupted");
    }
  }

  /** A HEADERS frame: its block, or undefined while CONTINUATION frames are to follow. */
  headers(flags: number, id: number, payload: Buffer): HeaderBlock | undefined {
    if (id === 0) throw new ConnectionError(h2Errors.protocolError, "HEADERS on stream 0");
    const block = headerBlockOf(flags, payload);
    const endStream = (flags & flagEndStream) !== 0;
    if (flags & flagEndHeaders) return { id, block, endStream };
    this.open = { id, endStream, parts: [Buffer.from(block)], bytes: block.length };
    return undefined;
  }

  /** A CONTINUATION frame: the whole block once it is the last piece. */
  continuation(flags: number, id: number, payload: Buffer): HeaderBlock | undefined {
    const open = this.open;
    if (!open || open.id !== id) {
      throw new ConnectionError(h2Errors.protocolError, "CONTINUATION without HEADERS");
    }
    open.parts.push(Buffer.from(payload));
    open.bytes += payload.length;
    if (open.bytes > this.maxBytes) {
      throw new ConnectionError(this.overCode, `header block over ${open.bytes} bytes`);
    }
    if (!(flags & flagEndHeaders)) return undefined;
    this.open = undefined;
    return { id, block: Buffer.concat(open.parts), endStream: open.endStream };
  }
}

/**
 * The connection's receive window as DATA arrives: `bytes` (padding included) counted against
 * `window`, a WINDOW_UPDATE queued once half of it is used; returns the bytes not yet given back.
 */
export function takeConnectionWindow(
  frames: FrameQueue,
  unacked: number,
  bytes: number,
  window: number,
): number {
  const used = unacked + bytes;
  if (used > window) {
    throw new ConnectionError(h2Errors.flowControlError, "connection window exceeded");
  }
  if (used < window / 2) return used;
  frames.windowUpdate(0, used);
  return 0;
}

/** The connection's send window after a WINDOW_UPDATE on stream 0. */
export function grownConnectionWindow(window: number, increment: number): number {
  if (increment === 0) throw new ConnectionError(h2Errors.protocolError, "zero increment");
  if (window + increment > maxWindow) {
    throw new ConnectionError(h2Errors.flowControlError, "connection window overflow");
  }
  return window + increment;
}

/** The code a stream's WINDOW_UPDATE resets it with (0: none, the window may grow). */
export function streamWindowUpdateError(window: number, increment: number): number {
  if (increment === 0) return h2Errors.protocolError;
  return window + increment > maxWindow ? h2Errors.flowControlError : 0;
}

/** The least a queue's buffer is made with: a turn of a few small frames fits. */
const QUEUE_MIN_BYTES = 1024;
/** A turn's size is remembered as the next buffer's size up to this (bigger turns grow). */
const QUEUE_HINT_MAX_BYTES = 64 * 1024;
/**
 * DATA payload chunks of this size and more are written as they are, not copied into the
 * turn's buffer (a 10 KiB message: one copy less; below a few KiB a copy costs no more than
 * the extra write).
 */
const DATA_REF_MIN_BYTES = 2048;
const noBytes = Buffer.alloc(0);

/**
 * Frames queued in one turn, written at its end (a microtask), once `ready()`; `flush()`
 * writes at once. Each frame is written straight into the turn's buffer (its 9-byte head,
 * then its payload): no object per frame, one copy of each payload, none of a large DATA
 * payload, which goes to the socket as it was queued. The turn's bytes go to the socket as
 * they are, in one write when they are one buffer, else corked; the next turn starts another
 * buffer, sized like the last turn's.
 */
export class FrameQueue {
  /** Bytes handed to the socket so far. */
  written = 0;
  private buf: Buffer = noBytes;
  /** Bytes of `buf` in use. */
  private length = 0;
  /** Bytes of `buf` already in `parts`. */
  private sealed = 0;
  /** The turn's bytes before `buf[sealed..length)`: filled buffers and large payloads. */
  private parts: Uint8Array[] = [];
  private partsBytes = 0;
  /** Bytes of the turn written as they were queued (not counted in the next buffer's size). */
  private refBytes = 0;
  private nextBytes = QUEUE_MIN_BYTES;
  private queued = false;
  private readonly flushNow = () => this.flush();
  private readonly write: (bytes: Uint8Array) => void;
  private readonly writeMany: (parts: Uint8Array[]) => void;
  private readonly ready: () => boolean;

  /**
   * `write` hands one buffer to the socket; `writeMany` several, in order (corked, one
   * write: vectored on Node, joined natively by Bun's node:net).
   */
  constructor(
    write: (bytes: Uint8Array) => void,
    writeMany: (parts: Uint8Array[]) => void,
    ready: () => boolean,
  ) {
    this.write = write;
    this.writeMany = writeMany;
    this.ready = ready;
  }

  /** Bytes queued and not yet written. */
  get bytes(): number {
    return this.partsBytes + this.length - this.sealed;
  }

  /** Makes room for `n` more bytes; returns where they go. */
  private room(n: number): number {
    let at = this.length;
    if (at + n > this.buf.length) {
      // A full buffer stays as it is, to be written with the turn: nothing is copied again.
      this.seal();
      this.buf = Buffer.allocUnsafe(Math.max(n, this.nextBytes, this.buf.length * 2));
      this.sealed = 0;
      at = 0;
    }
    this.length = at + n;
    this.schedule();
    return at;
  }

  /** Moves the buffer's unsealed bytes into `parts`. */
  private seal(): void {
    if (this.length === this.sealed) return;
    this.parts.push(this.buf.subarray(this.sealed, this.length));
    this.partsBytes += this.length - this.sealed;
    this.sealed = this.length;
  }

  /** Queues `bytes` as they are: the caller leaves them unchanged until written. */
  private reference(bytes: Uint8Array): void {
    this.seal();
    this.parts.push(bytes);
    this.partsBytes += bytes.length;
    this.refBytes += bytes.length;
    this.schedule();
  }

  private schedule(): void {
    if (!this.queued) {
      this.queued = true;
      queueMicrotask(this.flushNow);
    }
  }

  raw(bytes: Uint8Array): void {
    const at = this.room(bytes.length);
    this.buf.set(bytes, at);
  }

  frame(type: number, flags: number, id: number, payload: Uint8Array): void {
    const size = payload.length;
    const at = this.head(type, flags, id, size, size);
    if (size > 0) this.buf.set(payload, at);
  }

  /**
   * Queues a frame's 9-byte head with room for `room` bytes of its `size`-byte payload;
   * returns where they go.
   */
  private head(type: number, flags: number, id: number, size: number, room: number): number {
    const at = this.room(9 + room);
    const b = this.buf;
    b[at] = (size >>> 16) & 0xff;
    b[at + 1] = (size >>> 8) & 0xff;
    b[at + 2] = size & 0xff;
    b[at + 3] = type;
    b[at + 4] = flags;
    b.writeUInt32BE(id, at + 5);
    return at + 9;
  }

  /**
   * One DATA frame of `size` bytes taken from the front of `queued`: whole chunks, then the
   * front of the next when it does not fit (what was taken leaves `queued`). Chunks queued
   * apart (a gRPC message's 5-byte prefix and the message) leave as one frame: small ones
   * copied once, into the turn's buffer, large ones (`DATA_REF_MIN_BYTES`) as they are.
   */
  data(id: number, flags: number, queued: Uint8Array[], size: number): void {
    this.head(frameType.data, flags, id, size, 0);
    let left = size;
    while (left > 0) {
      let chunk = queued[0] as Uint8Array;
      if (chunk.length <= left) queued.shift();
      else {
        queued[0] = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.length;
      if (chunk.length >= DATA_REF_MIN_BYTES) this.reference(chunk);
      else {
        const at = this.room(chunk.length); // may take a new buffer: read `buf` after
        this.buf.set(chunk, at);
      }
    }
  }

  windowUpdate(id: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.frame(frameType.windowUpdate, 0, id, payload);
  }

  rstStream(id: number, code: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.frame(frameType.rstStream, 0, id, payload);
  }

  goaway(lastStreamId: number, code: number, message: string): void {
    const payload = Buffer.allocUnsafe(8 + Buffer.byteLength(message, "latin1"));
    payload.writeUInt32BE(lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(message, 8, "latin1");
    this.frame(frameType.goaway, 0, 0, payload);
  }

  /** A header block as HEADERS and the CONTINUATION frames past `maxFrame`. */
  headerBlock(id: number, block: Uint8Array, endStream: boolean, maxFrame: number): void {
    for (let at = 0; ; ) {
      const size = Math.min(block.length - at, maxFrame);
      const last = at + size >= block.length;
      const type = at === 0 ? frameType.headers : frameType.continuation;
      let flags = last ? flagEndHeaders : 0;
      if (at === 0 && endStream) flags |= flagEndStream;
      // A view costs an allocation (and, for a fresh small array, the runtime's buffer
      // object): a block in one frame is passed whole.
      this.frame(type, flags, id, last && at === 0 ? block : block.subarray(at, at + size));
      at += size;
      if (last) return;
    }
  }

  /** Drops what is queued (the connection is gone). */
  clear(): void {
    this.buf = noBytes;
    this.length = 0;
    this.sealed = 0;
    this.parts = [];
    this.partsBytes = 0;
    this.refBytes = 0;
  }

  flush(): void {
    this.queued = false;
    const total = this.bytes;
    if (total === 0 || !this.ready()) return;
    this.nextBytes = Math.min(
      Math.max(total - this.refBytes, QUEUE_MIN_BYTES),
      QUEUE_HINT_MAX_BYTES,
    );
    this.written += total;
    if (this.parts.length === 0) {
      const length = this.length;
      const bytes = length === this.buf.length ? this.buf : this.buf.subarray(0, length);
      this.clear();
      this.write(bytes);
      return;
    }
    this.seal();
    const parts = this.parts;
    this.clear();
    this.writeMany(parts);
  }
}

/** Writes `parts` to `socket` in order, corked: they leave together (see FrameQueue). */
export function writeParts(
  socket: { cork(): void; uncork(): void; write(bytes: Uint8Array): boolean },
  parts: readonly Uint8Array[],
): void {
  socket.cork();
  for (const part of parts) socket.write(part);
  socket.uncork();
}
