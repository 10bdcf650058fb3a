/**
 * The front door's HTTP/2 on the gateway's own server session (src/h2/server-session.ts)
 * rather than the runtime's `node:http2`: native gRPC calls (grpc-stream-handler.ts) run on
 * it directly; every other stream on the connection (Connect, gRPC-Web over HTTP/2, the ops
 * services, fetch routes, plain HTTP) is relayed, headers, body, trailers and resets, over an
 * in-memory HTTP/2 connection to the listener's `node:http2` server, where connect-es and
 * Hono serve it as before (docs/architecture.md: The front door's HTTP/2).
 *
 * `OwnCallStream` gives a native call the part of `ServerHttp2Stream` it uses (events as one
 * listener slot each, not an EventEmitter: a pending call holds little).
 */
import * as http2 from "node:http2";
import { constants } from "node:http2";
import { Duplex } from "node:stream";
import { grpcPrefix } from "../grpc/framing.ts";
import { flagEndStream, h2Errors } from "../h2/frames.ts";
import type { HeaderField } from "../h2/hpack.ts";
import { ServerSession, type ServerStream } from "../h2/server-session.ts";
import type { TurnGatheredStream } from "../runtime/http2-batching.ts";
import { http2WindowSettings } from "../runtime/http2-windows.ts";
import type { GuardedConnection, StreamWatch } from "./connection-guard.ts";

type Listener = (this: OwnCallStream, ...args: never[]) => void;

/** A native call's stream on the gateway's own session, shaped as the call expects. */
export class OwnCallStream implements TurnGatheredStream {
  readonly session: ServerSession;
  readonly id: number;
  readableEnded = false;
  aborted = false;
  private readonly inner: ServerStream;
  private dataListener: ((this: OwnCallStream, chunk: Uint8Array) => void) | undefined;
  private endListener: ((this: OwnCallStream) => void) | undefined;
  /** The first 'close' listener, and any more (a gated call adds one). */
  private closeListener: Listener | undefined;
  private closeListeners: Listener[] | undefined;
  private trailersListener: Listener | undefined;
  private drainListeners: Listener[] | undefined;
  private finishListeners: Listener[] | undefined;
  /** The guard's record of the call: told when the stream closes (and whether by a reset). */
  watch: StreamWatch | undefined;
  private paused = false;
  /** Body read while paused, and whether the request's end came with it. */
  private held: Uint8Array[] | undefined;
  private endHeld = false;
  private waitForTrailers = false;
  private lastData: Uint8Array | undefined;
  /** The 5-byte gRPC head `lastData` leaves after, when it is one message (see `endMessage`). */
  private lastPrefix: Uint8Array | undefined;
  private finishedSent = false;
  /** The session writes each turn's frames together (see sendTrailersSoon). */
  readonly framesGatheredPerTurn = true;

  constructor(session: ServerSession, inner: ServerStream) {
    this.session = session;
    this.inner = inner;
    this.id = inner.id;
    inner.handler = this;
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  get destroyed(): boolean {
    return this.inner.closed;
  }

  get writableLength(): number {
    return this.inner.queuedBytes;
  }

  on(event: string, listener: Listener): this {
    const fn = listener as (...args: unknown[]) => void;
    switch (event) {
      case "data":
        this.dataListener = fn as (chunk: Uint8Array) => void;
        break;
      case "end":
        this.endListener = fn as () => void;
        break;
      case "close":
        if (this.closeListener === undefined) this.closeListener = listener;
        else this.closeListeners = appended(this.closeListeners, listener);
        break;
      case "wantTrailers":
        this.trailersListener = listener;
        break;
      case "drain":
        this.drainListeners = appended(this.drainListeners, listener);
        break;
      case "finish":
        this.finishListeners = appended(this.finishListeners, listener);
        break;
      default:
        // 'error': this stream raises none (a broken connection closes it).
        break;
    }
    return this;
  }

  /** Listeners that run once: 'drain', 'finish', 'wantTrailers' and 'close' are one-shot here. */
  once(event: string, listener: Listener): this {
    return this.on(event, listener);
  }

  respond(headers: http2.OutgoingHttpHeaders, options?: http2.ServerStreamResponseOptions): void {
    this.waitForTrailers = options?.waitForTrailers === true;
    this.inner.respond(fieldsOf(headers), options?.endStream === true);
  }

  write(bytes: Uint8Array): boolean {
    return this.inner.write(bytes);
  }

  end(bytes?: Uint8Array): void {
    this.endWith(bytes, undefined);
  }

  /**
   * Ends the stream with one uncompressed gRPC message: `end(grpcFrame(message))` without the
   * framed copy (its head and the message leave in one DATA frame).
   */
  endMessage(message: Uint8Array): void {
    this.endWith(message, grpcPrefix(message.length));
  }

  private endWith(bytes: Uint8Array | undefined, prefix: Uint8Array | undefined): void {
    if (this.waitForTrailers && this.trailersListener) {
      // The trailers go with the last DATA (sendTrailers below).
      this.lastData = bytes;
      this.lastPrefix = prefix;
      const ask = this.trailersListener;
      this.trailersListener = undefined;
      ask.call(this);
      return;
    }
    this.inner.end(bytes, undefined, prefix);
  }

  sendTrailers(headers: http2.OutgoingHttpHeaders): void {
    const last = this.lastData;
    const prefix = this.lastPrefix;
    this.lastData = undefined;
    this.lastPrefix = undefined;
    this.inner.end(last, fieldsOf(headers), prefix);
  }

  /** Resets the stream (`code`, as RST_STREAM; NO_ERROR too). */
  close(code: number = constants.NGHTTP2_NO_ERROR): void {
    this.inner.reset(code);
  }

  /** Ends the stream at once (RST_STREAM CANCEL). */
  destroy(): void {
    this.inner.reset(h2Errors.cancel);
  }

  pause(): this {
    this.paused = true;
    this.inner.pause();
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    const held = this.held;
    this.held = undefined;
    if (held) for (const chunk of held) this.dataListener?.call(this, chunk);
    if (this.endHeld) {
      this.endHeld = false;
      this.readableEnded = true;
      this.endListener?.call(this);
    }
    if (!this.paused) this.inner.resume();
    return this;
  }

  /** The body held while paused (a stream being handed to the relay), and whether it ended. */
  takeHeld(): { chunks: Uint8Array[]; ended: boolean } {
    const chunks = this.held ?? [];
    const ended = this.endHeld;
    this.held = undefined;
    this.endHeld = false;
    return { chunks, ended };
  }

  // ServerStreamHandler

  data(bytes: Uint8Array, endStream: boolean): void {
    if (this.paused) {
      if (bytes.length > 0) this.held = appended(this.held, bytes);
      if (endStream) this.endHeld = true;
      return;
    }
    if (bytes.length > 0) this.dataListener?.call(this, bytes);
    if (endStream) {
      this.readableEnded = true;
      this.endListener?.call(this);
    }
  }

  drain(): void {
    const listeners = this.drainListeners;
    this.drainListeners = undefined;
    if (listeners) for (const fn of listeners) fn.call(this);
  }

  finished(): void {
    this.finishedSent = true;
    const listeners = this.finishListeners;
    this.finishListeners = undefined;
    if (listeners) for (const fn of listeners) fn.call(this);
  }

  streamClosed(rstCode: number, byClient: boolean): void {
    this.aborted = byClient || (rstCode !== 0 && !this.finishedSent);
    this.drain();
    const first = this.closeListener;
    const more = this.closeListeners;
    this.closeListener = undefined;
    this.closeListeners = undefined;
    first?.call(this);
    if (more) for (const fn of more) fn.call(this);
    const watch = this.watch;
    if (watch) {
      this.watch = undefined;
      watch.connection.streamClosed(watch, this.aborted);
    }
  }
}

function appended<T>(list: T[] | undefined, item: T): T[] {
  if (list === undefined) return [item];
  list.push(item);
  return list;
}

/** HTTP/2 fields of a `node:http2`-style header object (`:status` first). */
export function fieldsOf(
  headers: http2.OutgoingHttpHeaders | http2.IncomingHttpHeaders,
): HeaderField[] {
  const fields: HeaderField[] = [];
  const status = headers[":status"];
  if (status !== undefined) fields.push([":status", String(status)]);
  for (const name in headers) {
    if (name === ":status") continue;
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (Array.isArray(value)) for (const v of value) fields.push([lower, String(v)]);
    else fields.push([lower, String(value)]);
  }
  return fields;
}

/** A request's fields as `node:http2` gives them: a header object and the flat raw list. */
export function headersOf(fields: readonly HeaderField[]): {
  headers: http2.IncomingHttpHeaders;
  raw: string[];
} {
  const headers: Record<string, string | string[]> = {};
  const raw: string[] = [];
  for (const [name, value] of fields) {
    raw.push(name, value);
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else if (name === "cookie") headers[name] = `${existing}; ${value}`;
    else if (name === "set-cookie") {
      headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
    } else headers[name] = `${existing}, ${value}`;
  }
  return { headers: headers as http2.IncomingHttpHeaders, raw };
}

export interface OwnSessionOptions {
  maxConcurrentStreams: number;
  maxHeaderListBytes: number;
  streamWindowBytes: number;
  connectionWindowBytes: number;
  /** Serves a native call; false when the stream is not one (it is relayed). */
  native(
    stream: OwnCallStream,
    headers: http2.IncomingHttpHeaders,
    raw: string[],
    watch: StreamWatch | undefined,
  ): boolean;
  /** Opens the in-memory connection other streams are relayed over (once per connection). */
  openRelay(): http2.ClientHttp2Session;
  onClose?(session: ServerSession): void;
}

/** Serves one HTTP/2 connection on the gateway's own session, under `connection`'s guard. */
export function serveOwnSession(
  socket: Duplex,
  connection: GuardedConnection | undefined,
  options: OwnSessionOptions,
): ServerSession {
  let relay: http2.ClientHttp2Session | undefined;
  const session: ServerSession = new ServerSession(socket, {
    maxConcurrentStreams: options.maxConcurrentStreams,
    maxHeaderListBytes: options.maxHeaderListBytes,
    streamWindowBytes: options.streamWindowBytes,
    connectionWindowBytes: options.connectionWindowBytes,
    onStream(inner, fields) {
      const stream = new OwnCallStream(session, inner);
      const { headers, raw } = headersOf(fields);
      const watch = connection?.callOpened(stream);
      stream.watch = watch;
      if (options.native(stream, headers, raw, watch)) return;
      relayOnceRead(stream, inner, headers, () => {
        relay ??= options.openRelay();
        return relay;
      });
    },
    onClose() {
      relay?.destroy();
      options.onClose?.(session);
    },
  });
  connection?.attachSession(session);
  return session;
}

/**
 * A stream that is not a native call is relayed once the frames read with its HEADERS are
 * taken, so that one the client resets in the same read (HEADERS + RST_STREAM, the "rapid
 * reset" pattern) never reaches a handler, as with the runtime's server; its body waits.
 * (A function of its own: a closure in `onStream` would give every native call a scope.)
 */
function relayOnceRead(
  stream: OwnCallStream,
  inner: ServerStream,
  headers: http2.IncomingHttpHeaders,
  relayOf: () => http2.ClientHttp2Session,
): void {
  stream.pause();
  queueMicrotask(() => {
    if (inner.closed) return; // its close counted the reset (the stream's watch)
    // From here the relayed stream is watched on the inner server.
    const watch = stream.watch;
    stream.watch = undefined;
    if (watch) watch.connection.watches.delete(watch);
    const { chunks, ended } = stream.takeHeld();
    relayStream(relayOf(), inner, headers, chunks, ended);
  });
}

/** Relays one stream to the inner server and its response back. */
function relayStream(
  relay: http2.ClientHttp2Session,
  inner: ServerStream,
  headers: http2.IncomingHttpHeaders,
  body: Uint8Array[],
  bodyEnded: boolean,
): void {
  let req: http2.ClientHttp2Stream;
  try {
    req = relay.request(headers, { endStream: bodyEnded && body.length === 0 });
  } catch {
    inner.reset(h2Errors.internalError);
    return;
  }
  let responseFields: HeaderField[] | undefined;
  let trailers: HeaderField[] | undefined;
  let ended = false;
  inner.handler = {
    data(bytes, endStream) {
      if (req.closed || req.destroyed) return;
      if (bytes.length > 0 && !req.write(bytes)) {
        inner.pause();
        req.once("drain", () => inner.resume());
      }
      if (endStream) req.end();
    },
    drain() {
      req.resume();
    },
    streamClosed(rstCode, byClient) {
      if (ended || req.closed || req.destroyed) return;
      req.close(byClient ? rstCode : constants.NGHTTP2_CANCEL);
    },
  };
  const finish = () => {
    if (ended) return;
    ended = true;
    inner.end(undefined, trailers);
  };
  // The runtime may hand over body bytes, and the end, before it emits 'response': they wait.
  let early: Uint8Array[] | undefined;
  let endEarly = false;
  req.on("response", (h, flags) => {
    responseFields = fieldsOf(h);
    const only = (Number(flags) & flagEndStream) !== 0;
    inner.respond(responseFields, only);
    if (only) ended = true;
    const held = early;
    early = undefined;
    if (held) for (const chunk of held) if (!inner.write(chunk)) req.pause();
    if (endEarly) finish();
  });
  req.on("data", (chunk: Uint8Array) => {
    if (!responseFields) early = appended(early, chunk);
    else if (!inner.write(chunk)) req.pause();
  });
  req.on("trailers", (t) => {
    trailers = fieldsOf(t);
  });
  req.on("end", () => {
    if (responseFields) finish();
    else endEarly = true;
  });
  for (const chunk of body) req.write(chunk);
  if (bodyEnded && body.length > 0) req.end();
  inner.resume();
  req.on("error", () => {});
  req.on("close", () => {
    if (ended || inner.closed) return;
    ended = true;
    inner.reset(req.rstCode || h2Errors.cancel);
  });
}

/**
 * Opens the in-memory HTTP/2 connection a client connection's relayed streams take: `serve`
 * hands its server end to the `node:http2` server that serves them.
 */
export function openRelay(
  socket: Duplex,
  serve: (inner: Duplex) => void,
  onError: (error: Error) => void,
): http2.ClientHttp2Session {
  const [outer, inner] = duplexPair(socket);
  serve(inner);
  const client = http2.connect("http://relay.invalid", {
    createConnection: () => outer,
    settings: http2WindowSettings,
  });
  client.on("error", onError);
  return client;
}

/**
 * Two connected in-memory duplexes: what one writes, the other reads. The inner end carries
 * the client connection's TLS facts (certificate, address), which the relayed calls' gates
 * and logs read off their socket.
 */
function duplexPair(outer: Duplex): [Duplex, Duplex] {
  let a: Duplex;
  let b: Duplex;
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        peer().push(chunk);
        callback();
      },
      final(callback) {
        peer().push(null);
        callback();
      },
      destroy(error, callback) {
        const other = peer();
        if (!other.destroyed) other.destroy();
        callback(error);
      },
    });
  a = make(() => b);
  b = make(() => a);
  const facts = outer as Duplex & {
    remoteAddress?: string;
    remotePort?: number;
    encrypted?: boolean;
    authorized?: boolean;
    alpnProtocol?: string | false;
    getPeerX509Certificate?: () => unknown;
    getPeerCertificate?: (detailed?: boolean) => unknown;
  };
  for (const end of [a, b]) {
    Object.assign(end, {
      remoteAddress: facts.remoteAddress,
      remotePort: facts.remotePort,
      ...(facts.encrypted
        ? {
            encrypted: true,
            authorized: facts.authorized,
            alpnProtocol: "h2",
            getPeerX509Certificate: () => facts.getPeerX509Certificate?.(),
            getPeerCertificate: (detailed?: boolean) => facts.getPeerCertificate?.(detailed),
          }
        : {}),
    });
  }
  return [a, b];
}
