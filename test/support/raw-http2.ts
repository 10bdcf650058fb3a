/**
 * A raw HTTP/2 client for abuse scenarios: it writes frames byte by byte over node:net, so a
 * test can do what no well-behaved client library would (ignore SETTINGS, never grant
 * window, reset streams at once, send half a frame, oversized header blocks) and watch what
 * the server answers frame by frame. Request headers are HPACK literals without indexing;
 * response header blocks are kept as bytes, not decoded (status checks use a real client).
 */
import net from "node:net";
import tls from "node:tls";

export const frameType = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;

export const flags = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

export const settingId = {
  maxConcurrentStreams: 0x3,
  initialWindowSize: 0x4,
  maxFrameSize: 0x5,
  maxHeaderListSize: 0x6,
} as const;

/** One frame the server sent. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** One frame's bytes. */
export function encodeFrame(
  type: number,
  frameFlags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = frameFlags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** A SETTINGS frame with these (id, value) pairs. */
export function settingsFrame(settings: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return encodeFrame(frameType.settings, 0, 0, payload);
}

function hpackInteger(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7, 0), bytes]);
}

/** A header block of literal fields without indexing (no Huffman, no dynamic table). */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(
    headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]),
  );
}

/** The request headers of a gRPC call to `path`, plus `extra`. */
export function grpcRequestHeaders(
  path: string,
  extra: ReadonlyArray<readonly [string, string]> = [],
): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra.map(([n, v]) => [n, v] as [string, string]),
  ];
}

/** A gRPC length-prefixed message. */
export function grpcMessage(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.byteLength);
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, 5);
  return out;
}

export interface RawHttp2Options {
  /** SETTINGS sent with the preface (default none). */
  settings?: ReadonlyArray<readonly [number, number]>;
  /** Acknowledge the server's SETTINGS (default true). */
  ackSettings?: boolean;
  /** Answer the server's PINGs (default true). */
  answerPings?: boolean;
  /** Send the preface at connect (default true). */
  sendPreface?: boolean;
  /** Connect over TLS with these options (no ALPN unless they set it). */
  tls?: tls.ConnectionOptions;
}

/** A raw HTTP/2 connection and everything the server sent on it. */
export interface RawHttp2 {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  /** Resolves when the socket closed (either side). */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  write(bytes: Buffer): void;
  /** HEADERS (+ CONTINUATION past 16 KiB) on `streamId`. */
  headers(
    streamId: number,
    headers: ReadonlyArray<readonly [string, string]>,
    endStream?: boolean,
  ): void;
  data(streamId: number, bytes: Uint8Array, endStream?: boolean): void;
  rst(streamId: number, code?: number): void;
  ping(payload?: Buffer): void;
  windowUpdate(streamId: number, increment: number): void;
  /** Resolves with the first frame (already received or to come) matching `match`. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** The GOAWAY frame received, if any: last stream id and error code. */
  goaway(): { lastStreamId: number; code: number } | undefined;
  /** RST_STREAM codes received, by stream. */
  resets(): Map<number, number>;
  close(): void;
}

/** Opens a raw HTTP/2 (prior knowledge) connection to `port` on 127.0.0.1. */
export async function connectRawHttp2(
  port: number,
  options: RawHttp2Options = {},
): Promise<RawHttp2> {
  const socket: net.Socket = options.tls
    ? tls.connect({ port, host: "127.0.0.1", ...options.tls })
    : net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once(options.tls ? "secureConnect" : "connect", resolve);
    socket.once("error", reject);
  });
  const ackSettings = options.ackSettings ?? true;
  const answerPings = options.answerPings ?? true;
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  let buffered: Buffer = Buffer.alloc(0);
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      isClosed = true;
      for (const wake of [...waiters]) wake();
      resolve();
    }),
  );
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const frame: Frame = {
        type: buffered[3] as number,
        flags: buffered[4] as number,
        streamId: buffered.readUInt32BE(5) & 0x7fffffff,
        payload: buffered.subarray(9, 9 + length),
      };
      buffered = buffered.subarray(9 + length);
      frames.push(frame);
      if (!socket.destroyed) {
        if (ackSettings && frame.type === frameType.settings && !(frame.flags & flags.ack)) {
          socket.write(encodeFrame(frameType.settings, flags.ack, 0));
        } else if (answerPings && frame.type === frameType.ping && !(frame.flags & flags.ack)) {
          socket.write(encodeFrame(frameType.ping, flags.ack, 0, frame.payload));
        }
      }
    }
    for (const wake of [...waiters]) wake();
  });
  const write = (bytes: Buffer) => {
    if (!socket.destroyed) socket.write(bytes);
  };
  if (options.sendPreface ?? true) write(Buffer.concat([preface, settingsFrame(options.settings)]));

  return {
    socket,
    frames,
    closed,
    get isClosed() {
      return isClosed;
    },
    write,
    headers(streamId, headers, endStream = false) {
      const block = headerBlock(headers);
      const maxFrame = 16_384;
      const first = block.subarray(0, maxFrame);
      const endHeaders = block.length <= maxFrame ? flags.endHeaders : 0;
      const parts = [
        encodeFrame(
          frameType.headers,
          endHeaders | (endStream ? flags.endStream : 0),
          streamId,
          first,
        ),
      ];
      for (let at = maxFrame; at < block.length; at += maxFrame) {
        const piece = block.subarray(at, at + maxFrame);
        const last = at + maxFrame >= block.length;
        parts.push(
          encodeFrame(frameType.continuation, last ? flags.endHeaders : 0, streamId, piece),
        );
      }
      write(Buffer.concat(parts));
    },
    data(streamId, bytes, endStream = false) {
      const maxFrame = 16_384;
      const parts: Buffer[] = [];
      const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (all.length === 0)
        parts.push(encodeFrame(frameType.data, endStream ? flags.endStream : 0, streamId));
      for (let at = 0; at < all.length; at += maxFrame) {
        const last = at + maxFrame >= all.length;
        parts.push(
          encodeFrame(
            frameType.data,
            last && endStream ? flags.endStream : 0,
            streamId,
            all.subarray(at, at + maxFrame),
          ),
        );
      }
      write(Buffer.concat(parts));
    },
    rst(streamId, code = 0x8) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(code);
      write(encodeFrame(frameType.rstStream, 0, streamId, payload));
    },
    ping(payload = Buffer.alloc(8)) {
      write(encodeFrame(frameType.ping, 0, 0, payload));
    },
    windowUpdate(streamId, increment) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(increment);
      write(encodeFrame(frameType.windowUpdate, 0, streamId, payload));
    },
    waitFor(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = frames.find(match);
          if (found) {
            done();
            resolve(found);
          } else if (isClosed) {
            done();
            reject(new Error("connection closed before the frame arrived"));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching frame within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    goaway() {
      const frame = frames.find((f) => f.type === frameType.goaway);
      if (!frame) return undefined;
      return {
        lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff,
        code: frame.payload.readUInt32BE(4),
      };
    },
    resets() {
      const out = new Map<number, number>();
      for (const f of frames) {
        if (f.type === frameType.rstStream) out.set(f.streamId, f.payload.readUInt32BE(0));
      }
      return out;
    },
    close() {
      socket.destroy();
    },
  };
}
