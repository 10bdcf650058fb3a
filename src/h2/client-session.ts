/**
 * An HTTP/2 client connection of the gateway's own (RFC 9113), for west's calls to its
 * upstreams: frames read and written straight on a TCP or TLS socket, HPACK by hpack.ts.
 * The runtime's `node:http2` client wraps every stream in a Node Duplex with its events;
 * under Bun that cost about 25 µs of CPU per unary call at 64 in flight, this about 6
 * (docs/architecture.md: West's upstream connection).
 *
 * What it does: the connection preface and SETTINGS (no server push, the gateway's
 * receive windows), PING answers, flow control both ways (receive windows refilled as data
 * is read, sends held to the peer's windows and frame size), the peer's concurrent-stream
 * limit (streams over it wait their turn), CONTINUATION, padding, GOAWAY (streams the peer
 * will not process end as refused, which is safe to retry; the session takes no new ones),
 * RST_STREAM, and connection errors answered with GOAWAY. Writes of one turn leave in one
 * socket write.
 *
 * What it leaves out, as a gRPC client may: server push (refused by SETTINGS), priorities
 * (ignored), the dynamic table when encoding (see hpack.ts), and HTTP/1.1 upgrade.
 */
import * as net from "node:net";
import * as tls from "node:tls";
import {
  ConnectionError,
  connectionPreface,
  defaultWindow,
  eachSetting,
  empty,
  FrameQueue,
  flagAck,
  flagEndStream,
  frameType,
  grownConnectionWindow,
  HeaderBlocks,
  h2Errors,
  maxWindow,
  type OnFrame,
  readChunk,
  setting,
  streamWindowUpdateError,
  takeConnectionWindow,
  unpad,
  windowIncrement,
  writeParts,
} from "./frames.ts";
import { checkLatin1, type HeaderField, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";

/** HTTP/2 error codes (frames.ts), as west's upstream status mapping reads them. */
export { h2Errors };

/** What a stream tells its user. */
export interface ClientStreamHandler {
  /** A header block: the response headers, then (with `endStream`) the trailers. */
  headers(fields: HeaderField[], endStream: boolean): void;
  /** Response body bytes, in order. */
  data(bytes: Uint8Array, endStream: boolean): void;
  /**
   * The stream is over for its user: the peer ended it (`rstCode` 0, after `endStream`), reset
   * it (`rstCode`), or the connection failed or went away (`error`).
   */
  closed(rstCode: number, error: Error | undefined): void;
}

export interface ClientSessionOptions {
  host: string;
  port: number;
  /** TLS options (ALPN `h2` is asked for unless given); absent: cleartext (h2c, prior knowledge). */
  tls?: tls.ConnectionOptions | undefined;
  /** Receive window per stream, announced in SETTINGS (default 1 MiB). */
  streamWindowBytes?: number;
  /** Receive window of the connection (default 16 MiB). */
  connectionWindowBytes?: number;
  /** The highest stream id this session uses (default 2^31 − 1, the protocol's; tests set less). */
  lastStreamId?: number;
  /**
   * Largest header list (names, values and 32 bytes per field) of a response's headers or
   * trailers (default 256 KiB): a larger one fails its stream. Past 16 times that, decoding
   * stops and the connection ends (its table could not be kept in step).
   */
  maxHeaderListBytes?: number;
}

/** An error of the connection, with a code the way Node's errors carry one. */
export class H2SessionError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** One request stream. */
export class ClientStream {
  /** 0 until its HEADERS left (it may wait for the peer's concurrent-stream limit). */
  id = 0;
  /** Over for its user (ended by the peer, reset, or failed). */
  closed = false;
  readonly handler: ClientStreamHandler;
  /** The request headers until they leave. */
  headerFields: readonly HeaderField[] | undefined;
  /** Body bytes waiting for send window. */
  queued: Uint8Array[] = [];
  queuedBytes = 0;
  /** The request's end was asked for (sent once `queued` is empty). */
  endRequested = false;
  localEnded = false;
  remoteEnded = false;
  /** Bytes it may send: the peer's window, set when its HEADERS leave. */
  sendWindow = 0;
  /** Bytes read since the last WINDOW_UPDATE for this stream. */
  unacked = 0;
  /** The response headers (a final status) arrived. */
  responded = false;
  private drainWaiters: (() => void)[] | undefined;
  private readonly session: ClientSession;

  constructor(session: ClientSession, handler: ClientStreamHandler) {
    this.session = session;
    this.handler = handler;
  }

  /**
   * Sends body bytes (and the request's end with `end`); false when some wait for the peer's
   * flow-control window: `drained()` resolves once they left (or the stream closed).
   * `prefix` goes first, in the same DATA frame: a gRPC message's 5-byte head, so the message
   * is not joined to it in a buffer of its own first.
   */
  write(bytes: Uint8Array, end: boolean, prefix?: Uint8Array): boolean {
    if (this.closed || this.endRequested) return true;
    if (prefix && prefix.length > 0) this.queue(prefix);
    if (bytes.length > 0) this.queue(bytes);
    if (end) this.endRequested = true;
    this.session.pump(this);
    return this.queuedBytes === 0;
  }

  private queue(bytes: Uint8Array): void {
    this.queued.push(bytes);
    this.queuedBytes += bytes.length;
  }

  /** Resolves once no body bytes wait for window, or the stream is closed. */
  drained(): Promise<void> {
    if (this.queuedBytes === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.drainWaiters) this.drainWaiters.push(resolve);
      else this.drainWaiters = [resolve];
    });
  }

  /** Ends the stream from this side with RST_STREAM (`code`, default CANCEL). */
  reset(code: number = h2Errors.cancel): void {
    this.session.resetStream(this, code);
  }

  /** Wakes drained() waiters (everything left, or the stream ended). */
  wakeDrained(): void {
    const waiters = this.drainWaiters;
    if (!waiters || (this.queuedBytes > 0 && !this.closed)) return;
    this.drainWaiters = undefined;
    for (const wake of waiters) wake();
  }
}

/** One HTTP/2 connection to an upstream; streams are opened with `request`. */
export class ClientSession {
  /** Takes no new streams: it failed, closed, or the peer sent GOAWAY. */
  goingAway = false;
  destroyed = false;
  private readonly socket: net.Socket;
  private connected = false;
  private peerSettingsSeen = false;
  private readonly encoder = new HpackEncoder();
  private readonly decoder: HpackDecoder;
  private readonly streams = new Map<number, ClientStream>();
  /** Streams waiting for the peer's concurrent-stream limit. */
  private readonly waiting: ClientStream[] = [];
  /** Streams with body bytes held by flow control. */
  private readonly blocked = new Set<ClientStream>();
  private nextId = 1;
  private open = 0;
  private peerMaxConcurrent = Number.POSITIVE_INFINITY;
  private peerInitialWindow = defaultWindow;
  private peerMaxFrame = 16_384;
  private sendWindow = defaultWindow;
  private readonly streamWindow: number;
  private readonly connectionWindow: number;
  private connectionUnacked = 0;
  private readonly frames: FrameQueue;
  private pending: Buffer | undefined;
  /** Header blocks, gathered across CONTINUATION frames. */
  private readonly headerBlocks: HeaderBlocks;
  private readonly onGone: ((session: ClientSession) => void) | undefined;
  private readonly maxHeaderListBytes: number;
  private readonly maxHeaderBlockBytes: number;
  private readonly lastStreamId: number;

  constructor(options: ClientSessionOptions, onGone?: (session: ClientSession) => void) {
    this.onGone = onGone;
    this.streamWindow = options.streamWindowBytes ?? 1024 * 1024;
    this.connectionWindow = options.connectionWindowBytes ?? 16 * 1024 * 1024;
    this.lastStreamId = Math.min(maxWindow, options.lastStreamId ?? maxWindow);
    this.maxHeaderListBytes = options.maxHeaderListBytes ?? defaultMaxHeaderListBytes;
    this.maxHeaderBlockBytes = this.maxHeaderListBytes * 16;
    this.decoder = new HpackDecoder({ maxHeaderListBytes: this.maxHeaderBlockBytes });
    this.headerBlocks = new HeaderBlocks(this.maxHeaderBlockBytes, h2Errors.protocolError);
    this.frames = new FrameQueue(
      (bytes) => this.socket.write(bytes),
      (parts) => writeParts(this.socket, parts),
      () => this.connected && !this.destroyed,
    );
    const ready = () => {
      this.connected = true;
      this.frames.flush();
    };
    if (options.tls) {
      const socket = tls.connect({
        ALPNProtocols: ["h2"],
        ...options.tls,
        host: options.host,
        port: options.port,
      });
      socket.once("secureConnect", () => {
        if (socket.alpnProtocol !== "h2") {
          const agreed = socket.alpnProtocol ? `"${socket.alpnProtocol}"` : "no protocol";
          this.fail(
            new H2SessionError(
              "ERR_HTTP2_ALPN",
              `upstream did not agree to HTTP/2 over TLS (ALPN gave ${agreed})`,
            ),
          );
          return;
        }
        ready();
      });
      this.socket = socket;
    } else {
      this.socket = net.connect({ host: options.host, port: options.port });
      this.socket.once("connect", ready);
    }
    this.socket.setNoDelay(true);
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", (err) => this.fail(err));
    this.socket.on("close", () =>
      this.fail(new H2SessionError("ECONNRESET", "upstream connection closed")),
    );
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(setting.enablePush, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(setting.initialWindowSize, 6);
    settings.writeUInt32BE(this.streamWindow, 8);
    this.frames.raw(connectionPreface);
    this.frames.frame(frameType.settings, 0, 0, settings);
    if (this.connectionWindow > defaultWindow) {
      this.frames.windowUpdate(0, this.connectionWindow - defaultWindow);
    }
  }

  /** Opens a stream with request `fields`; its events go to `handler`. */
  request(fields: readonly HeaderField[], handler: ClientStreamHandler): ClientStream {
    if (this.goingAway || this.destroyed) {
      throw new H2SessionError("ERR_HTTP2_GOAWAY_SESSION", "the upstream session is going away");
    }
    const stream = new ClientStream(this, handler);
    stream.headerFields = fields;
    if (this.open < this.peerMaxConcurrent) this.start(stream);
    else {
      // Encoded when it leaves (the dynamic table follows the order blocks go out), so
      // checked now: a field that cannot be encoded throws here, as it does for one sent now.
      checkLatin1(fields);
      this.waiting.push(stream);
    }
    return stream;
  }

  /** Closes the connection; open streams fail. */
  destroy(): void {
    this.fail(new H2SessionError("ERR_HTTP2_SESSION_CLOSED", "the upstream session was closed"));
  }

  /** Sends a stream's HEADERS (and whatever body it already has). */
  private start(stream: ClientStream): void {
    if (this.nextId > this.lastStreamId) {
      // Stream ids ran out (only streams that waited past the retirement below get here).
      this.retire();
      this.endStream(
        stream,
        0,
        new H2SessionError(
          "ERR_HTTP2_GOAWAY_SESSION",
          "the upstream session ran out of stream ids",
        ),
      );
      return;
    }
    // Before any state changes: the one step that can throw (a field not latin1).
    const block = this.encoder.encode(stream.headerFields as readonly HeaderField[]);
    stream.headerFields = undefined;
    const id = this.nextId;
    this.nextId += 2;
    // Ids are never reused: a session near the end of them takes no new calls (the pool opens
    // another; at 10,000 calls/s that is after about 30 hours) and its streams finish.
    if (this.nextId > this.lastStreamId - spareStreamIds) this.retire();
    stream.id = id;
    this.streams.set(id, stream);
    this.open++;
    // The peer's window as it is now (SETTINGS change it only for started streams).
    stream.sendWindow = this.peerInitialWindow;
    this.frames.headerBlock(id, block, false, this.peerMaxFrame);
    this.pump(stream);
  }

  /** Sends what flow control lets of a stream's body, and its end once all left. */
  pump(stream: ClientStream): void {
    if (stream.id === 0 || stream.closed || stream.localEnded) return;
    while (stream.queuedBytes > 0) {
      const allowed = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrame);
      if (allowed <= 0) {
        this.blocked.add(stream);
        return;
      }
      const size = Math.min(stream.queuedBytes, allowed);
      stream.queuedBytes -= size;
      stream.sendWindow -= size;
      this.sendWindow -= size;
      const end = stream.endRequested && stream.queuedBytes === 0;
      this.frames.data(stream.id, end ? flagEndStream : 0, stream.queued, size);
      if (end) this.localEnd(stream);
    }
    this.blocked.delete(stream);
    if (stream.endRequested && !stream.localEnded) {
      this.frames.frame(frameType.data, flagEndStream, stream.id, empty);
      this.localEnd(stream);
    }
    stream.wakeDrained();
  }

  private localEnd(stream: ClientStream): void {
    stream.localEnded = true;
    if (stream.remoteEnded) this.forget(stream);
  }

  /** RST_STREAM from this side; the stream's handler hears nothing more. */
  resetStream(stream: ClientStream, code: number): void {
    if (stream.id === 0) {
      const at = this.waiting.indexOf(stream);
      if (at >= 0) this.waiting.splice(at, 1);
      stream.closed = true;
      stream.wakeDrained();
      return;
    }
    this.sendReset(stream, code);
    stream.closed = true;
    stream.wakeDrained();
  }

  /** RST_STREAM for a stream still in the session, which leaves it. */
  private sendReset(stream: ClientStream, code: number): void {
    if (!this.streams.has(stream.id)) return;
    this.frames.rstStream(stream.id, code);
    this.forget(stream);
  }

  /** Resets a stream the peer broke, and tells its user. */
  private abortStream(stream: ClientStream, code: number, error?: Error): void {
    this.sendReset(stream, code);
    this.endStream(stream, error ? 0 : code, error);
  }

  /** Takes a stream out of the session and lets a waiting one start. */
  private forget(stream: ClientStream): void {
    if (!this.streams.delete(stream.id)) return;
    this.open--;
    this.blocked.delete(stream);
    this.startWaiting();
    if (this.goingAway && this.streams.size === 0) this.closeSocket();
  }

  /** Ends a stream for its user. */
  private endStream(stream: ClientStream, rstCode: number, error: Error | undefined): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.wakeDrained();
    stream.handler.closed(rstCode, error);
  }

  private onData(chunk: Buffer): void {
    const pending = this.pending;
    this.pending = undefined;
    let rest: Buffer | undefined;
    try {
      rest = readChunk(
        pending,
        chunk,
        this.onFrameBound,
        this.isDestroyed,
        this.peerSettingsSeen ? undefined : this.firstFrameCheck,
      );
    } catch (err) {
      this.connectionError(err);
      return;
    }
    if (rest && !this.destroyed) this.pending = rest;
  }

  private readonly onFrameBound: OnFrame = (type, flags, id, payload) =>
    this.onFrame(type, flags, id, payload);
  private readonly isDestroyed = () => this.destroyed;
  private readonly firstFrameCheck = (type: number, _flags: number, at: number, buf: Buffer) =>
    this.checkFirstFrame(buf, at, type);

  /** A server's first frame is its SETTINGS: anything else is not an HTTP/2 server. */
  private checkFirstFrame(buf: Buffer, at: number, type: number): void {
    if (this.peerSettingsSeen) return;
    if (type !== frameType.settings) {
      const start = buf
        .subarray(at, at + 16)
        .toString("latin1")
        .replace(/[^ -~]/g, ".");
      throw new ConnectionError(
        h2Errors.protocolError,
        `the upstream does not speak HTTP/2 here (its first bytes: "${start}")`,
      );
    }
    this.peerSettingsSeen = true;
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    this.headerBlocks.check(type);
    switch (type) {
      case frameType.data:
        this.onDataFrame(flags, id, payload);
        return;
      case frameType.headers: {
        const complete = this.headerBlocks.headers(flags, id, payload);
        if (complete) this.onHeaderBlock(complete.id, complete.block, complete.endStream);
        return;
      }
      case frameType.continuation: {
        const complete = this.headerBlocks.continuation(flags, id, payload);
        if (complete) this.onHeaderBlock(complete.id, complete.block, complete.endStream);
        return;
      }
      case frameType.rstStream: {
        if (id === 0 || payload.length !== 4) {
          throw new ConnectionError(h2Errors.protocolError, "malformed RST_STREAM");
        }
        const stream = this.streams.get(id);
        if (!stream) return;
        this.forget(stream);
        this.endStream(stream, payload.readUInt32BE(0), undefined);
        return;
      }
      case frameType.settings:
        this.onSettings(flags, id, payload);
        return;
      case frameType.pushPromise:
        throw new ConnectionError(h2Errors.protocolError, "PUSH_PROMISE with push disabled");
      case frameType.ping:
        if (id !== 0 || payload.length !== 8) {
          throw new ConnectionError(h2Errors.protocolError, "malformed PING");
        }
        if (!(flags & flagAck)) this.frames.frame(frameType.ping, flagAck, 0, Buffer.from(payload));
        return;
      case frameType.goaway:
        this.onGoaway(id, payload);
        return;
      case frameType.windowUpdate:
        this.onWindowUpdate(id, payload);
        return;
      default:
        // PRIORITY and unknown frame types carry nothing a client must act on.
        return;
    }
  }

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(h2Errors.protocolError, "DATA on stream 0");
    // All of it counts against the windows, padding included.
    this.connectionUnacked = takeConnectionWindow(
      this.frames,
      this.connectionUnacked,
      payload.length,
      this.connectionWindow,
    );
    const body = unpad(flags, payload);
    const stream = this.streams.get(id);
    if (!stream || stream.closed) return;
    if (!stream.responded) {
      this.abortStream(stream, h2Errors.protocolError);
      return;
    }
    const end = (flags & flagEndStream) !== 0;
    if (!end) {
      stream.unacked += payload.length;
      if (stream.unacked > this.streamWindow) {
        this.abortStream(stream, h2Errors.flowControlError);
        return;
      }
      if (stream.unacked >= this.streamWindow / 2) {
        this.frames.windowUpdate(id, stream.unacked);
        stream.unacked = 0;
      }
    }
    if (body.length > 0 || end) stream.handler.data(body, end);
    if (end) this.remoteEnd(stream);
  }

  private onHeaderBlock(id: number, block: Uint8Array, endStream: boolean): void {
    let fields: HeaderField[];
    try {
      // Every block is decoded, a dropped stream's too: the table is the connection's.
      fields = this.decoder.decode(block);
    } catch (err) {
      if (err instanceof HpackError) {
        throw new ConnectionError(h2Errors.compressionError, err.message);
      }
      throw err;
    }
    const stream = this.streams.get(id);
    if (!stream || stream.closed) return;
    let listBytes = 0;
    for (const [name, value] of fields) listBytes += name.length + value.length + 32;
    if (listBytes > this.maxHeaderListBytes) {
      const error = new H2SessionError(
        "ERR_HTTP2_HEADER_LIST_TOO_LARGE",
        `upstream header list of ${listBytes} bytes is over the limit of ${this.maxHeaderListBytes}`,
      );
      this.abortStream(stream, h2Errors.cancel, error);
      return;
    }
    if (!stream.responded) {
      const status = fields.length > 0 && fields[0]?.[0] === ":status" ? fields[0][1] : "";
      // 1xx answers come before the real one and say nothing to a gRPC client.
      if (status.length === 3 && status[0] === "1" && !endStream) return;
      stream.responded = true;
    } else if (!endStream) {
      this.abortStream(stream, h2Errors.protocolError);
      return;
    }
    stream.handler.headers(fields, endStream);
    if (endStream) this.remoteEnd(stream);
  }

  /** The peer ended its side: the stream is over for its user. */
  private remoteEnd(stream: ClientStream): void {
    stream.remoteEnded = true;
    if (stream.localEnded) this.forget(stream);
    this.endStream(stream, 0, undefined);
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(h2Errors.protocolError, "SETTINGS on a stream");
    if (flags & flagAck) return;
    eachSetting(payload, (key, value) => {
      if (key === setting.initialWindowSize) {
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) stream.sendWindow += delta;
      } else if (key === setting.maxFrameSize) this.peerMaxFrame = value;
      else if (key === setting.maxConcurrentStreams) this.peerMaxConcurrent = value;
      else if (key === setting.headerTableSize) this.encoder.setPeerTableSize(value);
      // The rest: a server's ENABLE_PUSH means nothing here.
    });
    this.frames.frame(frameType.settings, flagAck, 0, empty);
    this.resumeBlocked();
    this.startWaiting();
  }

  /** Starts the streams waiting for the peer's concurrent-stream limit, as far as it lets. */
  private startWaiting(): void {
    while (this.waiting.length > 0 && this.open < this.peerMaxConcurrent) {
      this.start(this.waiting.shift() as ClientStream);
    }
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    const increment = windowIncrement(payload);
    if (id === 0) {
      this.sendWindow = grownConnectionWindow(this.sendWindow, increment);
      this.resumeBlocked();
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) return;
    const error = streamWindowUpdateError(stream.sendWindow, increment);
    if (error !== 0) {
      this.abortStream(stream, error);
      return;
    }
    stream.sendWindow += increment;
    if (this.blocked.has(stream)) this.pump(stream);
  }

  private resumeBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.pump(stream);
    }
  }

  private onGoaway(id: number, payload: Buffer): void {
    if (id !== 0 || payload.length < 8) {
      throw new ConnectionError(h2Errors.protocolError, "malformed GOAWAY");
    }
    // A later GOAWAY may only lower the last id; streams above an earlier one are gone already.
    const lastId = payload.readUInt32BE(0) & 0x7fff_ffff;
    this.retire();
    // Streams the peer never processed: safe to make again elsewhere. The rest may finish,
    // whatever the GOAWAY's error code; the socket closes once they have.
    for (const stream of [...this.streams.values()]) {
      if (stream.id <= lastId) continue;
      this.forget(stream);
      this.endStream(stream, h2Errors.refusedStream, undefined);
    }
    for (const stream of this.waiting.splice(0)) {
      this.endStream(stream, h2Errors.refusedStream, undefined);
    }
    if (this.streams.size === 0) this.closeSocket();
  }

  /** No new streams on this session (the pool opens another). */
  private retire(): void {
    if (this.goingAway) return;
    this.goingAway = true;
    this.onGone?.(this);
  }

  private closeSocket(): void {
    if (this.destroyed) return;
    this.frames.flush();
    this.destroyed = true;
    this.socket.end();
  }

  /** A protocol error of the peer: GOAWAY with its code, then every stream fails. */
  private connectionError(err: unknown): void {
    const code = err instanceof ConnectionError ? err.h2Code : h2Errors.internalError;
    const message = err instanceof Error ? err.message : String(err);
    this.frames.goaway(0, code, message);
    this.frames.flush();
    this.fail(
      new H2SessionError(
        "ERR_HTTP2_SESSION_ERROR",
        `upstream broke the HTTP/2 protocol: ${message} (error code ${code})`,
      ),
    );
  }

  /** The connection is gone: every stream ends with `error`. */
  private fail(error: Error): void {
    this.retire();
    const streams = [...this.streams.values(), ...this.waiting.splice(0)];
    this.streams.clear();
    this.blocked.clear();
    this.open = 0;
    if (!this.destroyed) {
      this.destroyed = true;
      this.socket.destroy();
    }
    for (const stream of streams) this.endStream(stream, 0, error);
  }
}

const defaultMaxHeaderListBytes = 256 * 1024;
/** Ids kept for streams already waiting (the peer's concurrent-stream limit) when a session retires. */
const spareStreamIds = 2 * 65_536;
