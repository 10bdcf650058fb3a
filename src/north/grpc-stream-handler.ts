/**
 * The native path for plain gRPC (`application/grpc`, protobuf) over HTTP/2: the request's
 * length-prefixed messages go to Kafka as they are, byte for byte, and reply records go back
 * the same way, straight on the HTTP/2 stream. No decode/encode and no per-call pipeline of
 * generators: a pending call is its stream plus a few small objects. Everything else
 * (gRPC-Web, Connect, gRPC+JSON, fetch routes) is left to connect-es (method-handlers.ts).
 *
 * Why one file over 500 lines: it is one call's state machine on the hottest path, the
 * NativeGrpcCall class (request frames in, produce, reply messages out, trailers, deadline,
 * cancel, flow control), with the stream event handlers as module functions so a pending
 * call holds no closures. Its steps share the call's fields; split across modules they would
 * need those fields public. Only the metadata and status-header helpers at the end stand
 * alone (about 70 lines).
 */
import {
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { promisify } from "node:util";
import { gunzip, inflate } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { EdgeLimits, GrpcKafkaRoute } from "../config/types.ts";
import { parseGrpcTimeout, timerDelayMs } from "../grpc/deadline.ts";
import {
  FrameTooLargeError,
  GrpcFrameReader,
  grpcFrame,
  grpcFrames,
  maxFramesWriteBytes,
} from "../grpc/framing.ts";
import { isGrpcProtoContentType } from "../grpc/metadata.ts";
import { encodeGrpcMessage, type GrpcStatus, statusOk } from "../grpc/status.ts";
import { isResponseMetadata } from "../kafka/record-contract.ts";
import { sendTrailersSoon } from "../runtime/http2-batching.ts";
import type { CallGate } from "./authorize.ts";
import type { ExpireReason, ExpiringCall, StreamWatch } from "./connection-guard.ts";
import { admitNativeCall, mayFetch } from "./guarded-native-call.ts";
import { noRouteError } from "./north-error.ts";
import { isOpsServicePath } from "./ops-services.ts";
import {
  type CallDeps,
  type MetadataEntries,
  type ProduceCall,
  type ProduceCallInit,
  type ReplySink,
  startProduceCall,
} from "./produce-call.ts";
import { matchRoute } from "./route-match.ts";

export interface GrpcStreamHandlerOptions {
  /** Served methods by request path ("/pkg.Service/Method"). */
  methods: ReadonlyMap<string, DescMethod>;
  routes: readonly GrpcKafkaRoute[];
  deps: CallDeps;
  /** The listener's call gate (authorization.ts); absent: calls need no authorizing. */
  gate?: CallGate | undefined;
}

/** Serves one HTTP/2 stream; returns false when it is not a call this path serves. */
export type GrpcStreamHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  watch?: StreamWatch,
) => boolean;

type Decompress = (bytes: Uint8Array, maxBytes: number) => Promise<Uint8Array>;
const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
// maxOutputLength stops a small compressed message from inflating past the message limit.
const decompressors: Record<string, Decompress> = {
  gzip: (bytes, maxBytes) => gunzipAsync(bytes, { maxOutputLength: Math.max(1, maxBytes) }),
  deflate: (bytes, maxBytes) => inflateAsync(bytes, { maxOutputLength: Math.max(1, maxBytes) }),
};

/** Creates the native gRPC stream handler. */
export function createGrpcStreamHandler(options: GrpcStreamHandlerOptions): GrpcStreamHandler {
  const { methods, routes, deps, gate } = options;
  return (stream, headers, rawHeaders, watch) => {
    if (headers[":method"] !== "POST" || !isGrpcProtoContentType(headers["content-type"])) {
      return false;
    }
    const path = (headers[":path"] ?? "").split("?", 1)[0] ?? "";
    const method = methods.get(path);
    if (!method) {
      // Health and reflection are connect-es services (ops-services.ts).
      if (isOpsServicePath(path)) return false;
      respondStatus(stream, Code.Unimplemented, `unknown method ${path}`);
      return true;
    }
    const lookup = { get: (name: string) => headerValue(headers, name) ?? null };
    if (gate) {
      // The route depends on the caller, known later; fetch routes are connect-es' anyway.
      if (mayFetch(routes, path.slice(1), lookup)) return false;
      const settings = callSettings(stream, headers);
      if (!settings) return true;
      admitNativeCall(stream, headers, gate, {
        method: path.slice(1),
        lookup,
        init: {
          deps,
          service: method.parent.typeName,
          method: method.name,
          metadata: metadataFromRawHeaders(rawHeaders),
          timeoutMs: settings.timeoutMs,
        },
        start: (admitted) => new NativeGrpcCall(stream, method, settings.encoding, admitted, watch),
        respondStatus: (code, message) => respondStatus(stream, code, message),
      });
      return true;
    }
    const route = matchRoute(routes, path.slice(1), lookup);
    if (!route) {
      respondStatus(stream, Code.Internal, noRouteError(path.slice(1)).rawMessage);
      return true;
    }
    // Fetch routes stream Kafka topics; connect-es serves them (method-handlers.ts).
    if (route.with.capability !== "produce") return false;
    const settings = callSettings(stream, headers);
    if (!settings) return true;
    const { encoding, timeoutMs } = settings;
    new NativeGrpcCall(
      stream,
      method,
      encoding,
      {
        deps,
        route: route.with,
        service: method.parent.typeName,
        method: method.name,
        metadata: metadataFromRawHeaders(rawHeaders),
        timeoutMs,
      },
      watch,
    );
    return true;
  };
}

/** The call's encoding and deadline; undefined when refused (the status was sent). */
function callSettings(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
): { encoding: string; timeoutMs: number | undefined } | undefined {
  const encoding = headerValue(headers, "grpc-encoding") ?? "identity";
  if (encoding !== "identity" && decompressors[encoding] === undefined) {
    respondStatus(stream, Code.Unimplemented, `unsupported grpc-encoding ${encoding}`, {
      "grpc-accept-encoding": "gzip, deflate, identity",
    });
    return undefined;
  }
  const timeoutMs = parseGrpcTimeout(headerValue(headers, "grpc-timeout"));
  if (Number.isNaN(timeoutMs)) {
    respondStatus(stream, Code.InvalidArgument, "malformed grpc-timeout");
    return undefined;
  }
  return { encoding, timeoutMs };
}

/** The call's stream listeners are shared functions; the stream leads them to its call. */
const callOfStream = Symbol("northGrpcCall");
type CallStream = ServerHttp2Stream & { [callOfStream]?: NativeGrpcCall };

function onStreamData(this: CallStream, chunk: Uint8Array): void {
  this[callOfStream]?.onData(chunk);
}

function onStreamEnd(this: CallStream): void {
  this[callOfStream]?.onEnd();
}

function onStreamClose(this: CallStream): void {
  this[callOfStream]?.onClose();
}

function onStreamWantTrailers(this: CallStream): void {
  this[callOfStream]?.onWantTrailers();
}

// Module functions rather than closures per call: pending calls hold as little as possible.
function callDeadlineBeforeStart(call: NativeGrpcCall): void {
  call.deadlineBeforeStart();
}

function closeStreamNoError(stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
}

/** Reply bytes past which a unary reply's end is watched for a client that does not read. */
const watchedEndBytes = 64 * 1024;

/**
 * One call on one HTTP/2 stream: frames in, frames and trailers out. Listeners are shared
 * functions and the call keeps no closures, so a pending call is this object, its produce
 * call and the stream.
 */
class NativeGrpcCall implements ReplySink, ExpiringCall {
  private readonly stream: CallStream;
  /** Reads the request's messages; dropped at the half-close (a pending call holds none). */
  private frames: GrpcFrameReader | undefined;
  /** What starts the produce call; dropped once it has. */
  private init: Omit<ProduceCallInit, "sink"> | undefined;
  private readonly decompress: Decompress | undefined;
  private readonly maxMessageBytes: number;
  private readonly limits: EdgeLimits;
  /** Unary and server-streaming requests carry exactly one message. */
  private readonly singleRequest: boolean;
  /** Unary and client-streaming replies carry exactly one message. */
  private readonly singleReply: boolean;
  private call: ProduceCall | undefined;
  private messagesIn = 0;
  /** Orders decompressed messages behind each other. */
  private inflating: Promise<void> | undefined;
  private heldRequest: Uint8Array | undefined;
  private heldReply: Uint8Array | undefined;
  /** Request reading is paused until the reply side drains (see holdRequests). */
  private requestsHeld = false;
  /** The reply's headers are decided (sent, or waiting in `replyHeaders`). */
  private headersSent = false;
  private ended = false;
  private trailers: OutgoingHttpHeaders | undefined;
  /**
   * What the call has to write waits for the end of the turn, when every call's writes go
   * out connection by connection (see queueReplyFlush): the reply headers, the messages,
   * and once ended, the one unary message (`lastReply`) and the status (`finishing`).
   */
  private replyHeaders: OutgoingHttpHeaders | undefined;
  private outgoing: Uint8Array[] | undefined;
  private lastReply: Uint8Array | undefined;
  private finishing = false;
  private flushQueued = false;
  private readonly watch: StreamWatch | undefined;
  /** A streaming call's deadline while it has not started (no message, no half-close yet). */
  private startDeadline: ReturnType<typeof setTimeout> | undefined;
  private startedAtMs = 0;

  constructor(
    stream: ServerHttp2Stream,
    method: DescMethod,
    encoding: string,
    init: Omit<ProduceCallInit, "sink">,
    watch: StreamWatch | undefined,
  ) {
    this.stream = stream;
    this.init = init;
    this.watch = watch;
    if (watch) watch.call = this;
    this.maxMessageBytes = init.deps.options.maxMessageBytes;
    this.limits = init.deps.limits;
    this.frames = new GrpcFrameReader(this.maxMessageBytes);
    this.decompress = decompressors[encoding];
    const kind = method.methodKind;
    this.singleRequest = kind === "unary" || kind === "server_streaming";
    this.singleReply = kind === "unary" || kind === "client_streaming";
    // A call starts with its first message or its half-close: a stream reset before then
    // costs nothing in Kafka (no record, no upstream call). A single-message request starts
    // at its half-close, with its one message, so both leave together.
    if (!this.singleRequest && init.timeoutMs !== undefined) {
      this.startedAtMs = Date.now();
      this.startDeadline = setTimeout(callDeadlineBeforeStart, timerDelayMs(init.timeoutMs), this);
    }
    this.stream[callOfStream] = this;
    stream.on("data", onStreamData);
    stream.on("end", onStreamEnd);
    stream.on("close", onStreamClose);
    stream.on("error", ignore);
  }

  private start(): ProduceCall {
    const init = this.init as Omit<ProduceCallInit, "sink">;
    this.init = undefined;
    if (this.startDeadline !== undefined) {
      clearTimeout(this.startDeadline);
      this.startDeadline = undefined;
      // The deadline counts from the call's headers, not from its first message.
      const timeoutMs = Math.max(0, (init.timeoutMs ?? 0) - (Date.now() - this.startedAtMs));
      return startProduceCall({ ...init, timeoutMs, sink: this });
    }
    return startProduceCall({ ...init, sink: this });
  }

  /** A streaming call's deadline passed before it started: nothing was produced. */
  deadlineBeforeStart(): void {
    this.startDeadline = undefined;
    if (!this.call) this.end(Code.DeadlineExceeded, "deadline exceeded", []);
  }

  /** The edge guard ends the call: its request sat idle, or its client stopped reading. */
  expired(reason: ExpireReason): void {
    if (reason === "idle") {
      // West is told to cancel too: the request it has is all there will be.
      this.abort(
        Code.DeadlineExceeded,
        `request stream idle for ${this.limits.streamIdleTimeoutMs} ms (--stream-idle-timeout-ms)`,
        true,
      );
      // The client never half-closed: once the status is out, the stream is reset
      // (NO_ERROR), as gRPC servers do, so it does not stay open on the client's side.
      setImmediate(closeStreamNoError, this.stream);
      return;
    }
    this.abort(
      Code.Canceled,
      reason === "unread-cap"
        ? `client left more than ${this.limits.maxWriteBufferBytes} reply bytes unread (--max-write-buffer-bytes)`
        : `client did not read the reply for ${this.limits.writeTimeoutMs} ms (--write-timeout-ms)`,
    );
    // Its trailers cannot get through a stream the client does not read: reset it.
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL);
  }

  onData(chunk: Uint8Array): void {
    this.watch?.touch();
    const reader = this.frames;
    if (this.ended || reader === undefined) return;
    let frames: ReturnType<GrpcFrameReader["push"]>;
    try {
      frames = reader.push(chunk);
    } catch (error) {
      if (error instanceof FrameTooLargeError) {
        this.abort(Code.ResourceExhausted, error.message);
        return;
      }
      throw error;
    }
    for (const frame of frames) {
      if (!frame.compressed) {
        if (this.inflating) {
          const bytes = frame.bytes;
          this.inflating = this.inflating.then(() => this.deliver(bytes));
        } else this.deliver(frame.bytes);
        continue;
      }
      const decompress = this.decompress;
      if (!decompress) {
        this.abort(Code.Internal, "compressed message without grpc-encoding");
        return;
      }
      const compressed = frame.bytes;
      this.inflating = (this.inflating ?? Promise.resolve()).then(async () => {
        let bytes: Uint8Array;
        try {
          bytes = await decompress(compressed, this.maxMessageBytes);
        } catch (error) {
          if (error instanceof RangeError) {
            this.abort(Code.ResourceExhausted, `message exceeds ${this.maxMessageBytes} bytes`);
          } else {
            this.abort(Code.Internal, "message could not be decompressed");
          }
          return;
        }
        this.deliver(bytes);
      });
    }
  }

  onEnd(): void {
    // A reset stream ends too (Node, Bun): that is no half-close, and starts nothing.
    if (this.stream.aborted) return;
    this.watch?.requestEnded();
    if (this.inflating) void this.inflating.then(() => this.halfClose());
    else this.halfClose();
  }

  private halfClose(): void {
    const buffered = this.frames?.buffered ?? 0;
    this.frames = undefined;
    if (this.ended) return;
    if (buffered > 0) {
      this.abort(Code.Internal, "request ended inside a message");
      return;
    }
    if (this.singleRequest) {
      const request = this.heldRequest;
      if (request === undefined) {
        this.abort(Code.Unimplemented, "protocol error: missing input message");
        return;
      }
      this.heldRequest = undefined;
      this.call = this.start();
      this.call.message(request);
    }
    // An empty client stream is a call too: it reaches the upstream (docs/contract.md: Where we differ from Zilla).
    this.call ??= this.start();
    this.call.halfClose();
  }

  onClose(): void {
    // The stream closed before the call ended: the client cancelled or the connection died.
    if (!this.ended) this.abort(Code.Canceled, "call cancelled by the client");
    if (this.startDeadline !== undefined) clearTimeout(this.startDeadline);
    this.stream[callOfStream] = undefined;
  }

  private deliver(bytes: Uint8Array): void {
    if (this.ended) return;
    this.messagesIn++;
    if (this.singleRequest) {
      if (this.messagesIn > 1) {
        this.abort(Code.Unimplemented, "protocol error: received extra input message");
        return;
      }
      // Held until the half-close, so the message and the end marker leave together and
      // sit next to each other in the partition: a consumer with a bound on calls in flight
      // never has to read past other calls to find this one's end.
      this.heldRequest = bytes;
      return;
    }
    this.call ??= this.start();
    this.call.message(bytes);
  }

  /** Ends the call; without a call started yet, only the stream (nothing reached Kafka). */
  abort(code: Code, message: string, cancelUpstream?: boolean): void {
    if (this.call) this.call.abort(code, message, cancelUpstream);
    else this.end(code, message, []);
  }

  headers(metadata: MetadataEntries): void {
    if (this.headersSent || this.ended || this.stream.closed) return;
    this.headersSent = true;
    const headers = outgoingMetadata(metadata);
    headers[":status"] = 200;
    headers["content-type"] = "application/grpc";
    this.replyHeaders = headers;
    this.queueFlush();
  }

  /** The HTTP/2 session the call's stream is on (the stream itself once it has none). */
  get session(): object {
    return this.stream.session ?? this.stream;
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueReplyFlush(this);
  }

  /** Writes what the call has waiting (see queueReplyFlush). */
  flushReplies(): void {
    this.flushQueued = false;
    const stream = this.stream;
    const headers = this.replyHeaders;
    if (headers !== undefined) {
      this.replyHeaders = undefined;
      if (stream.closed || stream.destroyed) return;
      try {
        stream.respond(headers, { waitForTrailers: true });
        stream.once("wantTrailers", onStreamWantTrailers);
      } catch {
        stream.close(0x2);
        return;
      }
    }
    this.flushOutgoing();
    if (this.finishing) this.finishStream();
  }

  message(bytes: Uint8Array): void {
    if (this.ended) return;
    if (this.singleReply) {
      if (this.heldReply !== undefined) {
        this.abort(Code.Internal, "reply has more than one message");
        return;
      }
      // Held until the status: a unary reply is one message and then OK, or an error alone.
      this.heldReply = bytes;
      return;
    }
    this.write(bytes);
  }

  end(code: GrpcStatus, message: string, trailers: MetadataEntries): void {
    if (this.ended) return;
    // A unary reply's one message goes out with the end of the stream (one write, not two).
    if (code === statusOk && this.singleReply) {
      if (this.heldReply === undefined) {
        code = Code.Internal;
        message = "reply ended without a message";
      } else {
        this.lastReply = this.heldReply;
        if (!this.headersSent) this.headers([]);
      }
    }
    this.ended = true;
    this.heldReply = undefined;
    const status = outgoingMetadata(trailers);
    status["grpc-status"] = String(code);
    if (message !== "") status["grpc-message"] = encodeGrpcMessage(message);
    this.trailers = status;
    this.finishing = true;
    this.queueFlush();
  }

  private finishStream(): void {
    this.finishing = false;
    const last = this.lastReply;
    this.lastReply = undefined;
    const stream = this.stream;
    if (stream.closed || stream.destroyed) return;
    // Anything the client still sends is of no use now.
    if (!stream.readableEnded) stream.resume();
    if (!this.headersSent) {
      // Trailers-only: the status rides on the one HEADERS frame.
      respondStatusHeaders(stream, this.trailers as OutgoingHttpHeaders);
      return;
    }
    if (last === undefined) stream.end();
    else {
      // The gateway's own session sends the message's head and the message without a framed copy.
      const own = stream as { endMessage?: (message: Uint8Array) => void };
      if (own.endMessage) own.endMessage(last);
      else stream.end(grpcFrame(last));
      // A large reply the client does not take is watched until it is (small ones cannot hold much).
      if (stream.writableLength > watchedEndBytes) this.watch?.blocked("finish");
    }
  }

  private write(bytes: Uint8Array): void {
    if (!this.headersSent) this.headers([]);
    if (this.stream.closed) return;
    // Reply messages handed over in one turn (one Kafka fetch) leave in one write.
    if (this.outgoing) this.outgoing.push(bytes);
    else this.outgoing = [bytes];
    this.queueFlush();
  }

  private flushOutgoing(): void {
    const messages = this.outgoing;
    this.outgoing = undefined;
    if (!messages || this.stream.closed || this.stream.destroyed) return;
    for (let i = 0; i < messages.length; ) {
      const { bytes, next } = grpcFrames(messages, i, maxFramesWriteBytes);
      i = next;
      if (this.stream.write(bytes)) this.watch?.touch();
      else {
        this.watch?.blocked("drain");
        this.holdRequests();
      }
    }
  }

  /**
   * The client does not take replies as fast as it sends requests: its request messages wait
   * in HTTP/2 flow control until it does, as they would at a server that writes each reply
   * before it reads on. Without this a bidi client that sends faster than it reads fills the
   * unread-reply cap and loses its call.
   */
  private holdRequests(): void {
    const stream = this.stream;
    if (this.requestsHeld || this.ended || stream.readableEnded || stream.destroyed) return;
    this.requestsHeld = true;
    stream.pause();
    stream.once("drain", () => {
      this.requestsHeld = false;
      if (!stream.destroyed && !stream.readableEnded) stream.resume();
    });
  }

  onWantTrailers(): void {
    // With the trailers of the other calls answered in this turn (see sendTrailersSoon).
    sendTrailersSoon(this.stream, this.trailers ?? { "grpc-status": String(statusOk) });
  }
}

function ignore(): void {}

/**
 * Calls with writes waiting, by HTTP/2 session, for the end of the turn. Under Bun a write
 * to one connection's socket flushes whatever another connection had waiting, so replies
 * written in the order their records arrive (interleaved across connections) leave in many
 * small socket writes; written connection by connection, they leave in one or two each.
 * A Bun server answering 64 calls a turn on 4 connections in a shuffled order: 46,600 calls/s,
 * 1.5 socket writes per call; grouped by connection: 84,100 calls/s, 0.14 writes per call.
 * Node's HTTP/2 (nghttp2) gathers a session's frames itself; there the grouping changes nothing.
 */
let flushing = new Map<object, NativeGrpcCall[]>();

function flushQueuedReplies(): void {
  const bySession = flushing;
  flushing = new Map();
  for (const calls of bySession.values()) {
    for (const call of calls) {
      try {
        call.flushReplies();
      } catch (error) {
        // The other calls still write; the failure surfaces as it would have in place.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

function queueReplyFlush(call: NativeGrpcCall): void {
  const session = call.session;
  const calls = flushing.get(session);
  if (calls) calls.push(call);
  else {
    flushing.set(session, [call]);
    if (flushing.size === 1) queueMicrotask(flushQueuedReplies);
  }
}

/** A request header's value; repeated entries joined as HTTP does. */
function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** Flat `rawHeaders` ([name, value, ...]) as entries, in received order. */
export function metadataFromRawHeaders(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    out.push([(raw[i] as string).toLowerCase(), raw[i + 1] as string]);
  }
  return out;
}

// HTTP/2 forbids connection-specific fields; a token is what a field name may be.
const connectionFields = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "host",
]);
const tokenPattern = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const valuePattern = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Reply metadata as HTTP/2 fields, leaving out what HTTP/2 cannot carry or gRPC owns. */
function outgoingMetadata(metadata: MetadataEntries): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [rawName, value] of metadata) {
    const name = rawName.toLowerCase();
    if (!isResponseMetadata(name) || connectionFields.has(name) || !tokenPattern.test(name))
      continue;
    if (!valuePattern.test(value)) continue;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else out[name] = Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  return out;
}

/** Answers a call with a status only (trailers-only response). */
function respondStatus(
  stream: ServerHttp2Stream,
  code: Code,
  message: string,
  extra: OutgoingHttpHeaders = {},
): void {
  stream.on("error", ignore);
  stream.resume();
  respondStatusHeaders(stream, {
    ...extra,
    "grpc-status": String(code),
    "grpc-message": encodeGrpcMessage(message),
  });
}

function respondStatusHeaders(stream: ServerHttp2Stream, status: OutgoingHttpHeaders): void {
  try {
    stream.respond(
      { ...status, ":status": 200, "content-type": "application/grpc" },
      { endStream: true },
    );
  } catch {
    stream.close(0x2);
  }
}
