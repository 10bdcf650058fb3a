/**
 * The echo upstream's fast path: uncompressed gRPC (`application/grpc`,
 * `application/grpc+proto`) served straight off a `node:http2` stream, with EchoRequest and
 * EchoResponse (one string field each) coded by hand. The benchmark runs the echo next to
 * the gateway it measures, and a connect-es router costs several times the CPU per call.
 */
import type * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { parseGrpcTimeout } from "../grpc/deadline.ts";
import { FrameTooLargeError, GrpcFrameReader } from "../grpc/framing.ts";
import { encodeGrpcMessage, statusOk } from "../grpc/status.ts";
import { endSoon, sendTrailersSoon } from "../runtime/http2-batching.ts";
import { defaultStreamCount, type EchoHooks, parseEchoHooks } from "./echo-hooks.ts";
import type { BeginEchoCall, EchoRequestLog } from "./echo-server.ts";

const servicePath = "/grpc.examples.echo.Echo/";

/** How many messages each side of a method sends: one, or a stream. */
interface Shape {
  clientStream: boolean;
  serverStream: boolean;
}

const shapes = new Map<string, Shape>([
  ["UnaryEcho", { clientStream: false, serverStream: false }],
  ["ServerStreamingEcho", { clientStream: false, serverStream: true }],
  ["ClientStreamingEcho", { clientStream: true, serverStream: false }],
  ["BidirectionalStreamingEcho", { clientStream: true, serverStream: true }],
]);

/** Serves one uncompressed gRPC call (a POST) on its HTTP/2 stream. */
export function serveGrpc(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  begin: BeginEchoCall,
): void {
  // Writes to a stream the client reset fail with an 'error' event; the call is over anyway.
  stream.on("error", () => {});
  const path = headers[":path"] ?? "";
  const method = path.startsWith(servicePath) ? path.slice(servicePath.length) : "";
  const shape = shapes.get(method);
  if (shape === undefined) {
    respondStatus(stream, Code.Unimplemented, `unknown method ${path}`);
  } else {
    const timeout = headers["grpc-timeout"];
    const timeoutMs = parseGrpcTimeout(Array.isArray(timeout) ? timeout.join() : timeout);
    if (Number.isNaN(timeoutMs)) {
      respondStatus(stream, Code.InvalidArgument, `invalid grpc-timeout ${timeout}`);
    } else {
      new GrpcCall(stream, headers, method, shape, begin, timeoutMs);
    }
  }
}

/** A response with no messages: the status in the headers (gRPC's trailers-only form). */
function respondStatus(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc+proto",
      "grpc-status": String(code),
      "grpc-message": encodeGrpcMessage(message),
    },
    { endStream: true },
  );
  // The request body is not wanted: drain it so the stream can close.
  stream.resume();
}

/** One call on the native path, from the request headers to the trailers. */
class GrpcCall {
  private readonly stream: http2.ServerHttp2Stream;
  private readonly requestHeaders: http2.IncomingHttpHeaders;
  private readonly method: string;
  private readonly shape: Shape;
  private readonly begin: BeginEchoCall;
  private readonly reader = new GrpcFrameReader(0xffff_ffff);
  private log: EchoRequestLog | undefined;
  /** Request messages not handled yet (a delay hook holds those behind it). */
  private readonly backlog: string[] = [];
  private received = 0;
  private requestEnded = false;
  /** A delay hook is running. */
  private sleeping = false;
  private finished = false;
  private headersSent = false;
  private meta = false;
  private trailers: http2.OutgoingHttpHeaders = {};
  private deadline: ReturnType<typeof setTimeout> | undefined;
  private delay: ReturnType<typeof setTimeout> | undefined;

  constructor(
    stream: http2.ServerHttp2Stream,
    requestHeaders: http2.IncomingHttpHeaders,
    method: string,
    shape: Shape,
    begin: BeginEchoCall,
    timeoutMs: number | undefined,
  ) {
    this.stream = stream;
    this.requestHeaders = requestHeaders;
    this.method = method;
    this.shape = shape;
    this.begin = begin;
    if (timeoutMs !== undefined) {
      this.deadline = setTimeout(
        () => this.finish(Code.DeadlineExceeded, "deadline exceeded"),
        timeoutMs,
      );
    }
    // A streaming request is handled message by message, so it is logged from the start.
    if (shape.clientStream) this.log = begin(method, requestHeaders);
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("end", () => {
      this.requestEnded = true;
      if (this.shape.clientStream) this.drain();
      else this.onSingleRequest();
    });
    stream.on("aborted", () => {
      if (this.log) this.log.reset = true;
    });
    // The client went away, or the call is done: stop any delay and the deadline.
    stream.on("close", () => {
      this.finished = true;
      this.release();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    let frames: ReturnType<GrpcFrameReader["push"]>;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      const code = err instanceof FrameTooLargeError ? Code.ResourceExhausted : Code.Internal;
      this.finish(code, `protocol error: ${(err as Error).message}`);
      return;
    }
    for (const frame of frames) {
      if (frame.compressed) {
        this.finish(Code.Internal, "protocol error: compressed message without grpc-encoding");
        return;
      }
      try {
        this.backlog.push(decodeEchoText(frame.bytes));
      } catch (err) {
        // INTERNAL, as connect-es and grpc-go answer a request they cannot parse.
        this.finish(Code.Internal, `invalid EchoRequest: ${(err as Error).message}`);
        return;
      }
      this.received++;
    }
    if (this.shape.clientStream) this.drain();
  }

  /** Unary and server streaming: the one request message, once the request is complete. */
  private onSingleRequest(): void {
    if (this.finished) return;
    if (this.reader.buffered > 0) {
      this.finish(Code.InvalidArgument, "protocol error: incomplete message");
      return;
    }
    const kind = this.shape.serverStream ? "server-streaming" : "unary";
    const text = this.backlog[0];
    if (text === undefined || this.received !== 1) {
      const problem = text === undefined ? "missing input message" : "received extra input message";
      this.finish(Code.Unimplemented, `protocol error: ${problem} for ${kind} method`);
      return;
    }
    this.begin(this.method, this.requestHeaders).messages.push(text);
    const hooks = parseEchoHooks(text);
    this.afterDelay(hooks, () => {
      if (!this.applyHooks(hooks, true)) return;
      const frame = echoResponseFrame(text);
      if (!this.shape.serverStream) {
        this.finish(statusOk, undefined, frame);
        return;
      }
      const count = hooks.streamCount ?? defaultStreamCount;
      this.sendHeaders();
      for (let i = 0; i < count - 1; i++) this.stream.write(frame);
      this.finish(statusOk, undefined, count > 0 ? frame : undefined);
    });
  }

  /** Client and bidi streaming: each message in order, then the end of the request. */
  private drain(): void {
    const log = this.log as EchoRequestLog;
    while (!this.finished && !this.sleeping) {
      const text = this.backlog.shift();
      if (text === undefined) break;
      log.messages.push(text);
      const first = log.messages.length === 1;
      const hooks = parseEchoHooks(text);
      this.afterDelay(hooks, () => {
        if (!this.applyHooks(hooks, first) || !this.shape.serverStream) return;
        this.sendHeaders();
        this.stream.write(echoResponseFrame(text));
      });
    }
    if (this.finished || this.sleeping || !this.requestEnded) return;
    if (this.reader.buffered > 0) {
      this.finish(Code.InvalidArgument, "protocol error: incomplete message");
      return;
    }
    const last = this.shape.serverStream ? undefined : echoResponseFrame(log.messages.join(","));
    this.finish(statusOk, undefined, last);
  }

  /**
   * Runs `then` once the delay hook's time has passed (at once without one), unless the
   * call ends first; a client stream's later messages wait for it.
   */
  private afterDelay(hooks: EchoHooks, then: () => void): void {
    if (hooks.delayMs === undefined) {
      then();
      return;
    }
    this.sleeping = true;
    this.delay = setTimeout(() => {
      this.sleeping = false;
      if (this.finished) return;
      then();
      if (this.shape.clientStream) this.drain();
    }, hooks.delayMs);
  }

  /**
   * The metadata hook (the first message only: headers precede any response message),
   * then the error hook. False when the call is over.
   */
  private applyHooks(hooks: EchoHooks, first: boolean): boolean {
    if (this.finished) return false;
    if (hooks.meta && first) this.meta = true;
    if (hooks.error) {
      this.finish(hooks.error.code, hooks.error.text);
      return false;
    }
    return true;
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const out: http2.OutgoingHttpHeaders = {
      ":status": 200,
      "content-type": "application/grpc+proto",
      "x-echo": "1",
    };
    if (this.meta) {
      for (const name in this.requestHeaders) {
        const value = this.requestHeaders[name];
        if (!name.startsWith("x-") || value === undefined) continue;
        const before = out[name];
        // An echoed x-echo joins ours rather than replacing it.
        out[name] = before === undefined ? value : [String(before), ...[value].flat()];
      }
    }
    this.stream.respond(out, { waitForTrailers: true });
    this.stream.once("wantTrailers", () => sendTrailersSoon(this.stream, this.trailers));
  }

  /** Ends the call with a status, after `last` (a framed message) when given. */
  private finish(code: number, message?: string, last?: Uint8Array): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    if (this.stream.destroyed || this.stream.closed) return;
    this.trailers = { "grpc-status": String(code) };
    if (message) this.trailers["grpc-message"] = encodeGrpcMessage(message);
    if (this.meta) this.trailers["x-trailer"] = "t";
    // With the other calls ended this turn: one socket write for all (see endSoon).
    endSoon(() => {
      if (this.stream.destroyed || this.stream.closed) return;
      this.sendHeaders();
      this.stream.end(last);
    });
  }

  private release(): void {
    clearTimeout(this.deadline);
    clearTimeout(this.delay);
  }
}

// ignoreBOM keeps a leading U+FEFF: the echo must give the text back unchanged.
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** `EchoRequest.message` (field 1, a string); other fields are skipped as protobuf says. */
function decodeEchoText(bytes: Uint8Array): string {
  let text = "";
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let scale = 1, i = 0; i < 10; i++, scale *= 128) {
      const byte = bytes[at++];
      if (byte === undefined) throw new Error("truncated varint");
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
    throw new Error("varint longer than 10 bytes");
  };
  // Field numbers of the groups we are inside (wire types 3 and 4 open and close them).
  const groups: number[] = [];
  while (at < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 0) throw new Error("field number 0");
    if (field === 1 && wireType !== 2 && groups.length === 0) {
      throw new Error(`field 1 with wire type ${wireType}`);
    }
    if (wireType === 2) {
      const length = varint();
      if (at + length > bytes.length) throw new Error("truncated field");
      if (field === 1 && groups.length === 0) {
        text = utf8Decoder.decode(bytes.subarray(at, at + length));
      }
      at += length;
    } else if (wireType === 0) varint();
    else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else if (wireType === 3) groups.push(field);
    else if (wireType === 4) {
      if (groups.pop() !== field) throw new Error("unmatched end group");
    } else throw new Error(`wire type ${wireType}`);
  }
  if (at > bytes.length) throw new Error("truncated field");
  if (groups.length > 0) throw new Error("unterminated group");
  return text;
}

/** A gRPC frame holding `EchoResponse{message: text}` (no field at all for ""). */
function echoResponseFrame(text: string): Uint8Array {
  const utf8 = utf8Encoder.encode(text);
  let prefix = 0;
  if (utf8.length > 0) {
    prefix = 2;
    for (let n = utf8.length; n >= 0x80; n = Math.floor(n / 128)) prefix++;
  }
  const out = new Uint8Array(5 + prefix + utf8.length);
  new DataView(out.buffer).setUint32(1, prefix + utf8.length);
  if (utf8.length > 0) {
    let at = 5;
    out[at++] = 0x0a; // field 1, wire type 2
    let n = utf8.length;
    for (; n >= 0x80; n = Math.floor(n / 128)) out[at++] = (n % 128) | 0x80;
    out[at++] = n;
    out.set(utf8, at);
  }
  return out;
}
