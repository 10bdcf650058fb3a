/**
 * An HTTP/2 server connection of the gateway's own (RFC 9113), for the front door: frames
 * read and written straight on the connection's socket, HPACK by hpack.ts. The runtime's
 * `node:http2` server makes every stream a Node Duplex with its events; under Bun that costs
 * a unary gRPC call about 20 µs of CPU at 16 in flight, against under 5 for frames on the
 * socket (`bench/profile/h2-server-cost.ts`).
 *
 * What it does: the client's preface and SETTINGS, the gateway's SETTINGS (no push, the
 * concurrent-stream and header-list limits, its receive windows), PING answers, flow control
 * both ways (receive windows refilled as the stream's user takes data; a paused stream's
 * window stays closed, so its client waits), sends held to the client's windows and frame
 * size, CONTINUATION, padding, RST_STREAM both ways, GOAWAY both ways (a graceful close lets
 * open streams finish), and connection errors answered with GOAWAY. Writes of one turn leave
 * in one socket write.
 *
 * Stream rules a server keeps: client stream ids are odd and rise; a HEADERS frame over the
 * concurrent-stream limit is refused (REFUSED_STREAM), one with a header list over the limit
 * too (ENHANCE_YOUR_CALM);
 * requests without :method, :scheme or :path (or CONNECT) are malformed (PROTOCOL_ERROR).
 */
import type { Duplex } from "node:stream";
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
import { StreamTable } from "./stream-table.ts";

/** What a stream tells its user. */
export interface ServerStreamHandler {
  /** Request body bytes, in order; `endStream` with the last (or alone, empty). */
  data(bytes: Uint8Array, endStream: boolean): void;
  /** The client's trailers (the request's end). */
  trailers?(fields: HeaderField[]): void;
  /** Body bytes that waited for the client's window have left: writes may go on. */
  drain?(): void;
  /** This side's END_STREAM left (the response is all written). */
  finished?(): void;
  /**
   * The stream is over: both sides ended (`rstCode` 0), either side reset it (`rstCode`), or
   * the connection ended (`rstCode` CANCEL, or the code of its error).
   */
  streamClosed(rstCode: number, byClient: boolean): void;
}

export interface ServerSessionOptions {
  /** Streams a client may have open at once (announced; HEADERS past it are refused). */
  maxConcurrentStreams: number;
  /** Largest request header list (names, values and 32 bytes per field), announced and enforced. */
  maxHeaderListBytes: number;
  /** Receive window per stream (default 1 MiB). */
  streamWindowBytes?: number;
  /** Receive window of the connection (default 16 MiB). */
  connectionWindowBytes?: number;
  /** A new request stream with its header fields; the callee sets `stream.handler`. */
  onStream(stream: ServerStream, fields: HeaderField[]): void;
  /** The connection is over (closed, failed, or broken by the client: `error`). */
  onClose?(error: Error | undefined): void;
}

/** One request stream. */
export class ServerStream {
  readonly id: number;
  handler: ServerStreamHandler | undefined;
  /** Over: ended both ways, reset, or its connection ended. */
  closed = false;
  /** The client ended its side (END_STREAM seen). */
  remoteEnded = false;
  /** This side ended its side (END_STREAM sent, or asked for and waiting for window). */
  localEnded = false;
  /** Response HEADERS sent. */
  responded = false;
  /** Body bytes waiting for the client's window. */
  /** Made at the first write (a pending call has none). */
  queued: Uint8Array[] | undefined;
  queuedBytes = 0;
  /** Trailers to send once `queued` is empty (the stream's end). */
  pendingTrailers: readonly HeaderField[] | undefined;
  endAfterQueue = false;
  sendWindow: number;
  /** Bytes received and not yet given back to the client's window. */
  unacked = 0;
  paused = false;
  private readonly session: ServerSession;

  constructor(session: ServerSession, id: number, sendWindow: number) {
    this.session = session;
    this.id = id;
    this.sendWindow = sendWindow;
  }

  /** Sends the response headers (`endStream`: they are all the response: trailers-only). */
  respond(fields: readonly HeaderField[], endStream = false): void {
    if (this.closed || this.responded) return;
    this.responded = true;
    this.session.sendHeaders(this, fields, endStream);
  }

  /** Sends body bytes; false when some wait for the client's window (`handler.drain` follows). */
  write(bytes: Uint8Array): boolean {
    if (this.closed || this.endAfterQueue || this.localEnded) return true;
    if (bytes.length > 0) this.queue(bytes);
    this.session.pump(this);
    return this.queuedBytes === 0;
  }

  private queue(bytes: Uint8Array): void {
    if (this.queued) this.queued.push(bytes);
    else this.queued = [bytes];
    this.queuedBytes += bytes.length;
  }

  /**
   * Ends the response: `prefix` and `bytes` (if any; a gRPC message's 5-byte head and the
   * message leave in one DATA frame without being joined into one buffer first), then
   * `trailers` (if any) carrying END_STREAM.
   */
  end(bytes?: Uint8Array, trailers?: readonly HeaderField[], prefix?: Uint8Array): void {
    if (this.closed || this.endAfterQueue || this.localEnded) return;
    if (prefix && prefix.length > 0) this.queue(prefix);
    if (bytes && bytes.length > 0) this.queue(bytes);
    // Encoded when they leave (the dynamic table follows the order blocks go out), so
    // checked now: a field that cannot be encoded throws here, as it always did.
    if (trailers) checkLatin1(trailers);
    this.pendingTrailers = trailers;
    this.endAfterQueue = true;
    this.session.pump(this);
  }

  /** Ends the stream with RST_STREAM (`code`, default CANCEL). */
  reset(code: number = h2Errors.cancel): void {
    this.session.resetStream(this, code);
  }

  /** Stops giving window back: the client's further body waits until `resume`. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.session.refill(this);
  }
}

/** One client connection. */
export class ServerSession {
  destroyed = false;
  /** GOAWAY sent: no new streams; the connection closes once the open ones end. */
  goingAway = false;
  readonly socket: Duplex;
  private readonly options: ServerSessionOptions;
  private readonly encoder = new HpackEncoder();
  private readonly decoder: HpackDecoder;
  private readonly streams = new StreamTable<ServerStream>();
  private readonly blocked = new Set<ServerStream>();
  private prefaceSeen = false;
  private settingsSeen = false;
  private lastClientId = 0;
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
  private readonly maxHeaderBlockBytes: number;
  private pings: ((error: Error | null) => void)[] = [];

  constructor(socket: Duplex, options: ServerSessionOptions) {
    this.socket = socket;
    this.options = options;
    this.streamWindow = options.streamWindowBytes ?? 1024 * 1024;
    this.connectionWindow = options.connectionWindowBytes ?? 16 * 1024 * 1024;
    // A block may be larger than the list it decodes to (it cannot be much smaller).
    this.maxHeaderBlockBytes = Math.max(options.maxHeaderListBytes * 2, 64 * 1024);
    this.decoder = new HpackDecoder({ maxHeaderListBytes: this.maxHeaderBlockBytes });
    this.headerBlocks = new HeaderBlocks(this.maxHeaderBlockBytes, h2Errors.enhanceYourCalm);
    this.frames = new FrameQueue(
      (bytes) => this.socket.write(bytes),
      (parts) => writeParts(this.socket, parts),
      () => !this.destroyed,
    );
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err: Error) => this.fail(err));
    socket.on("close", () => this.fail(undefined));
    const settings = Buffer.alloc(24);
    settings.writeUInt16BE(setting.enablePush, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(setting.maxConcurrentStreams, 6);
    settings.writeUInt32BE(options.maxConcurrentStreams, 8);
    settings.writeUInt16BE(setting.initialWindowSize, 12);
    settings.writeUInt32BE(this.streamWindow, 14);
    settings.writeUInt16BE(setting.maxHeaderListSize, 18);
    settings.writeUInt32BE(options.maxHeaderListBytes, 20);
    this.frames.frame(frameType.settings, 0, 0, settings);
    if (this.connectionWindow > defaultWindow) {
      this.frames.windowUpdate(0, this.connectionWindow - defaultWindow);
    }
  }

  /** Bytes read off the socket before the session took it (the sniffed preface). */
  feed(bytes: Buffer): void {
    this.onData(bytes);
  }

  /** Sends PING; `done` runs when its ACK comes (with an error if the connection ends first). */
  ping(done: (error: Error | null) => void): boolean {
    if (this.destroyed) return false;
    this.pings.push(done);
    this.frames.frame(frameType.ping, 0, 0, new Uint8Array(8));
    return true;
  }

  /** GOAWAY with `code` (the connection takes no new streams; see `close`). */
  goaway(code: number = h2Errors.noError): void {
    this.close(code);
  }

  /** The connection ended or is ending (GOAWAY sent). */
  get closed(): boolean {
    return this.destroyed || this.goingAway;
  }

  /** Bytes written to the socket so far: what moves when the client reads. */
  bytesWritten(): number {
    return (this.socket as { bytesWritten?: number }).bytesWritten ?? this.frames.written;
  }

  /**
   * Bytes held for the client: streams' queues (its flow-control windows), the turn's frames,
   * and what the socket holds that the client has not read.
   */
  queuedBytes(): number {
    let bytes =
      this.frames.bytes + ((this.socket as { writableLength?: number }).writableLength ?? 0);
    for (const stream of this.blocked) bytes += stream.queuedBytes;
    return bytes;
  }

  /**
   * Graceful close: GOAWAY naming the last stream taken; open streams finish, then the socket
   * ends. `code` other than NO_ERROR says why (ENHANCE_YOUR_CALM for abuse).
   */
  close(code: number = h2Errors.noError, message = ""): void {
    if (this.destroyed) return;
    if (!this.goingAway) {
      this.goingAway = true;
      this.frames.goaway(this.lastClientId, code, message);
    }
    if (this.streams.size === 0) this.endSocket();
  }

  /** Ends the connection now; open streams end with CANCEL. */
  destroy(): void {
    this.fail(undefined);
  }

  sendHeaders(stream: ServerStream, fields: readonly HeaderField[], endStream: boolean): void {
    this.frames.headerBlock(stream.id, this.encoder.encode(fields), endStream, this.peerMaxFrame);
    if (endStream) this.localEnd(stream);
  }

  /** Sends what flow control lets of a stream's body, then its end once all left. */
  pump(stream: ServerStream): void {
    if (stream.closed || stream.localEnded) return;
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
      const endHere =
        stream.endAfterQueue && stream.queuedBytes === 0 && stream.pendingTrailers === undefined;
      this.frames.data(stream.id, endHere ? flagEndStream : 0, stream.queued as Uint8Array[], size);
      if (endHere) {
        this.localEnd(stream);
        return;
      }
    }
    const wasBlocked = this.blocked.delete(stream);
    if (stream.endAfterQueue) {
      const trailers = stream.pendingTrailers;
      stream.pendingTrailers = undefined;
      if (trailers) {
        this.frames.headerBlock(stream.id, this.encoder.encode(trailers), true, this.peerMaxFrame);
      } else this.frames.frame(frameType.data, flagEndStream, stream.id, empty);
      this.localEnd(stream);
      return;
    }
    if (wasBlocked) stream.handler?.drain?.();
  }

  /** Gives a resumed stream's read bytes back to the client's window. */
  refill(stream: ServerStream): void {
    if (stream.paused || stream.closed || stream.remoteEnded || stream.unacked === 0) return;
    this.frames.windowUpdate(stream.id, stream.unacked);
    stream.unacked = 0;
  }

  resetStream(stream: ServerStream, code: number): void {
    if (stream.closed) return;
    this.frames.rstStream(stream.id, code);
    this.endStream(stream, code, false);
  }

  private localEnd(stream: ServerStream): void {
    stream.localEnded = true;
    stream.handler?.finished?.();
    if (stream.remoteEnded) this.endStream(stream, h2Errors.noError, false);
  }

  private endStream(stream: ServerStream, rstCode: number, byClient: boolean): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    stream.queued = undefined;
    stream.queuedBytes = 0;
    stream.handler?.streamClosed(rstCode, byClient);
    if (this.goingAway && this.streams.size === 0) this.endSocket();
  }

  private endSocket(): void {
    if (this.destroyed) return;
    this.frames.flush();
    this.destroyed = true;
    this.socket.end();
    this.options.onClose?.(undefined);
  }

  private onData(chunk: Buffer): void {
    let pending = this.pending;
    this.pending = undefined;
    let rest: Buffer | undefined;
    try {
      let buf = chunk;
      if (!this.prefaceSeen) {
        if (pending) buf = Buffer.concat([pending, chunk]);
        pending = undefined;
        const n = Math.min(buf.length, connectionPreface.length);
        if (!buf.subarray(0, n).equals(connectionPreface.subarray(0, n))) {
          throw new ConnectionError(h2Errors.protocolError, "not an HTTP/2 connection preface");
        }
        if (buf.length < connectionPreface.length) {
          this.pending = buf;
          return;
        }
        this.prefaceSeen = true;
        buf = buf.subarray(connectionPreface.length);
      }
      rest = readChunk(
        pending,
        buf,
        this.onFrameBound,
        this.isDestroyed,
        this.settingsSeen ? undefined : this.firstFrameCheck,
      );
    } catch (err) {
      this.connectionError(err);
      return;
    }
    // A copy: the unfinished frame's start, not the whole read it is a view of, stays held.
    if (rest && !this.destroyed) this.pending = Buffer.from(rest);
  }

  private readonly onFrameBound: OnFrame = (type, flags, id, payload) =>
    this.onFrame(type, flags, id, payload);
  private readonly isDestroyed = () => this.destroyed;
  private readonly firstFrameCheck = (type: number, flags: number) =>
    this.checkFirstFrame(type, flags);

  /** The client's preface ends with its SETTINGS. */
  private checkFirstFrame(type: number, flags: number): void {
    if (this.settingsSeen) return;
    if (type !== frameType.settings || flags & flagAck) {
      throw new ConnectionError(h2Errors.protocolError, "the preface lacks SETTINGS");
    }
    this.settingsSeen = true;
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
        if (id > this.lastClientId) {
          throw new ConnectionError(h2Errors.protocolError, "RST_STREAM on an idle stream");
        }
        const stream = this.streams.get(id);
        if (!stream) return;
        this.endStream(stream, payload.readUInt32BE(0), true);
        return;
      }
      case frameType.settings:
        this.onSettings(flags, id, payload);
        return;
      case frameType.pushPromise:
        throw new ConnectionError(h2Errors.protocolError, "PUSH_PROMISE from a client");
      case frameType.ping:
        if (id !== 0 || payload.length !== 8) {
          throw new ConnectionError(h2Errors.protocolError, "malformed PING");
        }
        if (!(flags & flagAck)) this.frames.frame(frameType.ping, flagAck, 0, Buffer.from(payload));
        else this.pings.shift()?.(null);
        return;
      case frameType.goaway:
        if (id !== 0) throw new ConnectionError(h2Errors.protocolError, "GOAWAY on a stream");
        // The client opens no more streams; the open ones finish.
        this.close();
        return;
      case frameType.windowUpdate:
        this.onWindowUpdate(id, payload);
        return;
      default:
        // PRIORITY and unknown frame types carry nothing a server must act on.
        return;
    }
  }

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(h2Errors.protocolError, "DATA on stream 0");
    // All of it counts against the windows, padding included.
    // The connection's window is given back at once: a paused stream holds its own.
    this.connectionUnacked = takeConnectionWindow(
      this.frames,
      this.connectionUnacked,
      payload.length,
      this.connectionWindow,
    );
    const body = unpad(flags, payload);
    const stream = this.streams.get(id);
    if (!stream) {
      if (id > this.lastClientId) {
        throw new ConnectionError(h2Errors.protocolError, "DATA on an idle stream");
      }
      return; // a stream reset meanwhile: its bytes are dropped
    }
    if (stream.remoteEnded) {
      this.resetStream(stream, h2Errors.streamClosed);
      return;
    }
    const end = (flags & flagEndStream) !== 0;
    stream.unacked += payload.length;
    if (stream.unacked > this.streamWindow) {
      this.resetStream(stream, h2Errors.flowControlError);
      return;
    }
    if (end) stream.remoteEnded = true;
    else if (!stream.paused && stream.unacked >= this.streamWindow / 2) {
      this.frames.windowUpdate(id, stream.unacked);
      stream.unacked = 0;
    }
    if (body.length > 0 || end) stream.handler?.data(body, end);
    if (end && stream.localEnded) this.endStream(stream, h2Errors.noError, false);
  }

  private onHeaderBlock(id: number, block: Uint8Array, endStream: boolean): void {
    let fields: HeaderField[];
    try {
      // Every block is decoded, a refused stream's too: the table is the connection's.
      fields = this.decoder.decode(block);
    } catch (err) {
      if (err instanceof HpackError) {
        throw new ConnectionError(h2Errors.compressionError, err.message);
      }
      throw err;
    }
    const open = this.streams.get(id);
    if (open) {
      // Trailers: the request's end.
      if (!endStream || open.remoteEnded) {
        this.resetStream(open, h2Errors.protocolError);
        return;
      }
      open.remoteEnded = true;
      open.handler?.trailers?.(fields);
      open.handler?.data(empty, true);
      if (open.localEnded) this.endStream(open, h2Errors.noError, false);
      return;
    }
    if (id <= this.lastClientId) {
      // A closed stream's HEADERS (or a reused id).
      throw new ConnectionError(h2Errors.streamClosed, `HEADERS on closed stream ${id}`);
    }
    if (id % 2 === 0) throw new ConnectionError(h2Errors.protocolError, "even client stream id");
    this.lastClientId = id;
    const stream = new ServerStream(this, id, this.peerInitialWindow);
    if (this.goingAway) {
      this.frames.rstStream(id, h2Errors.refusedStream);
      return;
    }
    if (this.streams.size >= this.options.maxConcurrentStreams) {
      this.frames.rstStream(id, h2Errors.refusedStream);
      return;
    }
    let listBytes = 0;
    for (const [name, value] of fields) listBytes += name.length + value.length + 32;
    if (listBytes > this.options.maxHeaderListBytes) {
      // The stream is refused (ENHANCE_YOUR_CALM, as the runtimes' servers answer it); the
      // connection goes on.
      this.frames.rstStream(id, h2Errors.enhanceYourCalm);
      return;
    }
    if (!wellFormedRequest(fields)) {
      this.frames.rstStream(id, h2Errors.protocolError);
      return;
    }
    this.streams.add(stream);
    stream.remoteEnded = endStream;
    this.options.onStream(stream, fields);
    if (endStream && !stream.closed) stream.handler?.data(empty, true);
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
      else if (key === setting.enablePush && value > 1) {
        throw new ConnectionError(h2Errors.protocolError, "invalid ENABLE_PUSH");
      } else if (key === setting.headerTableSize) this.encoder.setPeerTableSize(value);
      // The rest: a server opens no streams.
    });
    this.frames.frame(frameType.settings, flagAck, 0, empty);
    this.resumeBlocked();
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
      this.resetStream(stream, error);
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

  /** A protocol error of the client: GOAWAY with its code, then the connection ends. */
  private connectionError(err: unknown): void {
    const code = err instanceof ConnectionError ? err.h2Code : h2Errors.internalError;
    const message = err instanceof Error ? err.message : String(err);
    this.frames.goaway(this.lastClientId, code, message);
    this.frames.flush();
    this.fail(err instanceof Error ? err : new Error(message), code);
  }

  /** The connection is gone: every open stream ends (CANCEL, or the error's code). */
  private fail(error: Error | undefined, code: number = h2Errors.cancel): void {
    if (this.destroyed && this.streams.size === 0) return;
    const streams = this.streams.takeAll();
    this.blocked.clear();
    const wasDestroyed = this.destroyed;
    this.destroyed = true;
    this.frames.clear();
    if (!wasDestroyed) this.socket.destroy();
    const gone = error ?? new Error("the connection closed");
    for (const ping of this.pings.splice(0)) ping(gone);
    for (const stream of streams) {
      if (stream.closed) continue;
      stream.closed = true;
      stream.handler?.streamClosed(code, true);
    }
    if (!wasDestroyed) this.options.onClose?.(error);
  }
}

/** A request's pseudo-headers as RFC 9113 section 8.3.1 asks (CONNECT is not served). */
function wellFormedRequest(fields: readonly HeaderField[]): boolean {
  let method = false;
  let scheme = false;
  let path = false;
  let regular = false;
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) !== 58 /* ':' */) {
      regular = true;
      if (name === "connection" || (name === "te" && value !== "trailers")) return false;
      continue;
    }
    // Pseudo-headers come first, once each.
    if (regular) return false;
    if (name === ":method") {
      if (method || value === "CONNECT") return false;
      method = true;
    } else if (name === ":scheme") {
      if (scheme) return false;
      scheme = true;
    } else if (name === ":path") {
      if (path || value === "") return false;
      path = true;
    } else if (name !== ":authority") return false;
  }
  return method && scheme && path;
}
