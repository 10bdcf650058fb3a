/**
 * West's upstream gRPC client: over the one HTTP/2 connection per upstream that
 * upstream-pool.ts keeps, every call made as a bidi stream so all four call shapes take one path, and message bytes passed
 * through untouched (no protobuf decode or encode: what came in a request record is what
 * leaves, byte for byte, whether or not the method is in `gen/`).
 *
 * The gRPC framing is spoken directly over the gateway's own HTTP/2 client (src/h2/,
 * PROTOCOL-HTTP2.md: a POST with `te: trailers`, length-prefixed messages, status in the
 * trailers). A general-purpose client (connect-es' gRPC transport) costs about five times
 * the CPU per call for the same work, and the runtime's `node:http2` client about four times
 * the transport's share; west makes one upstream call per request, so that cost capped the
 * gateway.
 * Failures map to gRPC codes the way connect-node maps them (see upstream-status.ts).
 */
import { gunzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { formatGrpcTimeout } from "../grpc/deadline.ts";
import {
  FrameTooLargeError,
  GrpcFrameReader,
  grpcFrames,
  grpcPrefix,
  maxFramesWriteBytes,
} from "../grpc/framing.ts";
import { reservedRequestHeaders } from "../grpc/metadata.ts";
import { statusFromTrailer } from "../grpc/status.ts";
import { type ClientStream, type ClientStreamHandler, h2Errors } from "../h2/client-session.ts";
import type { HeaderField } from "../h2/hpack.ts";
import { callDeadlines, type Expiring } from "../runtime/deadline-queue.ts";
import { ResponseFields } from "./response-fields.ts";
import type { UpstreamTransport } from "./upstream-pool.ts";
import { codeFromHttpStatus, codeFromResetCode, statusFromStreamError } from "./upstream-status.ts";

/** What a call needs of its cancel signal (an AbortSignal is one). */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Request messages that have arrived, and whether the request ended after them. */
export interface RequestChunk {
  messages: readonly Uint8Array[];
  ended: boolean;
}

/**
 * Where an attempt reads its request messages: what has arrived is taken at once, without
 * a turn of the event loop (a unary call's whole request is there when the attempt starts),
 * and `wait` only when nothing has. An async iterator costs several promises per chunk, a
 * measurable part of west's CPU per call.
 */
export interface RequestSource {
  /** The messages that arrived since the last take; undefined while none did and the request goes on. */
  take(): RequestChunk | undefined;
  /** Resolves once `take` may have more. */
  wait(): Promise<void>;
}

/** A source of a request known in full (tests, tools). */
export function requestSourceOf(messages: readonly Uint8Array[]): RequestSource {
  let taken = false;
  return {
    take() {
      if (taken) return undefined;
      taken = true;
      return { messages, ended: true };
    },
    wait: () => new Promise<void>(() => {}),
  };
}

export interface UpstreamCall {
  transport: UpstreamTransport;
  service: string;
  method: string;
  /** Request metadata as carried in `meta:*` headers (`-bin` values stay base64 text). */
  metadata: readonly (readonly [string, string])[];
  /** Absolute deadline, epoch ms. */
  deadlineMs: number;
  signal: CancelSignal;
  /**
   * The request messages (protobuf bytes) from the first one on, in chunks of what has
   * arrived; called again for each retry. A chunk that ends the request lets its last
   * message leave with the end of the stream (one DATA frame, one write, for a unary call).
   */
  requests: () => RequestSource;
  retry: { initialBackoffMs: number; maxBackoffMs: number };
  /** The upstream answered (response headers): no retry can need the sent messages again. */
  onAnswered?: () => void;
  /** Each response message, with the response header on the first one only. */
  onMessage: (bytes: Uint8Array, header: ResponseFields | undefined) => void;
  now?: () => number;
}

export interface UpstreamResult {
  /** gRPC status code: `statusOk` or a `Code`. */
  code: number;
  message?: string | undefined;
  /** Response header, when no message carried it (error or empty response stream). */
  header?: ResponseFields | undefined;
  trailer: ResponseFields;
  attempts: number;
  /**
   * The status is the upstream's own (its grpc-status): the call's outcome. Otherwise west
   * made it (deadline, cancel, reset, unreachable) and what the upstream did is not known.
   */
  fromUpstream?: boolean;
}

/** Largest response message accepted (gRPC's length prefix allows 4 GiB). */
const maxResponseMessageBytes = 0xffff_ffff;

/**
 * Runs one upstream call to the end and never throws: failures become a status. A
 * connection that cannot be made is retried with exponential backoff until the deadline;
 * once the upstream answered anything, its status is final. Each attempt that cannot reach
 * the upstream is reported to the transport's health at once, and a call that ends without
 * reaching it says so in its status message, with the attempts made and the last reason.
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamResult> {
  const now = call.now ?? Date.now;
  const startedAt = now();
  const unreachable = { attempts: 0, reason: "" };
  const result = await attemptUntilAnswered(call, now, unreachable);
  if (unreachable.attempts === 0 || result.answered) return result.result;
  const seconds = formatSeconds((now() - startedAt) / 1000);
  const attempts = `${result.result.attempts} attempt${result.result.attempts === 1 ? "" : "s"}`;
  const what = `upstream ${call.transport.authority} unreachable after ${attempts} over ${seconds}: ${unreachable.reason}`;
  // A call cut short by its deadline or a cancel keeps that code, and says what it met.
  const message =
    result.result.code === Code.Unavailable ? what : `${result.result.message}; ${what}`;
  return { ...result.result, message };
}

/** Attempts until the upstream answers or there is no time left for another attempt. */
async function attemptUntilAnswered(
  call: UpstreamCall,
  now: () => number,
  unreachable: { attempts: number; reason: string },
): Promise<{ result: UpstreamResult; answered: boolean }> {
  let backoffMs = call.retry.initialBackoffMs;
  let attempts = 0;
  let headers: HeaderField[];
  const unanswered = (result: UpstreamResult) => ({ result, answered: false });
  try {
    headers = requestHeaders(call);
  } catch (err) {
    const message = `invalid request metadata: ${errorText(err)}`;
    return unanswered(failure(Code.InvalidArgument, message, attempts));
  }

  for (;;) {
    const timeoutMs = call.deadlineMs - now();
    if (timeoutMs <= 0) {
      return unanswered(failure(Code.DeadlineExceeded, "deadline exceeded", attempts));
    }
    if (call.signal.aborted) {
      return unanswered(failure(Code.Canceled, "the operation was aborted", attempts));
    }
    attempts++;
    const outcome = await new UpstreamAttempt(call, headers, timeoutMs).done;
    if (outcome.unreachable) {
      unreachable.attempts++;
      unreachable.reason = outcome.result.message ?? "no connection";
      call.transport.health?.unreachable(unreachable.reason);
    } else if (outcome.answered) {
      call.transport.health?.reached();
    }
    const waitMs = Math.min(backoffMs, call.retry.maxBackoffMs);
    // Only a failure to reach the upstream at all is retried (a server's own status, even
    // UNAVAILABLE, is its answer), and only while the deadline leaves room for a wait.
    if (outcome.unreachable && !call.signal.aborted && now() + waitMs < call.deadlineMs) {
      await sleep(waitMs, call.signal);
      backoffMs = Math.min(backoffMs * 2, call.retry.maxBackoffMs);
      continue;
    }
    const answered = outcome.answered && !outcome.unreachable;
    return { result: { ...outcome.result, attempts }, answered };
  }
}

/** Seconds for a message: "0.4 s", "12 s". */
function formatSeconds(seconds: number): string {
  return `${seconds < 10 ? Math.round(seconds * 10) / 10 : Math.round(seconds)} s`;
}

/**
 * The call's HTTP/2 request headers but its `grpc-timeout` (each attempt adds its own);
 * throws on metadata that is not a valid header.
 */
function requestHeaders(call: UpstreamCall): HeaderField[] {
  const out: HeaderField[] = [
    [":method", "POST"],
    [":scheme", call.transport.scheme],
    [":authority", call.transport.authority],
    [":path", `/${call.service}/${call.method}`],
    ["content-type", "application/grpc+proto"],
    ["te", "trailers"],
    // No grpc-accept-encoding: compressing over the short hop to the upstream costs more
    // CPU than it saves, so the upstream answers uncompressed (gzip is still read).
    ["user-agent", "zilla-gateway-ts"],
  ];
  if (call.metadata.length === 0) return out;
  // Headers validates names and values the way a client must (and lower-cases names).
  const metadata = new Headers();
  for (const [name, value] of call.metadata) metadata.append(name, value);
  metadata.forEach((value, name) => {
    if (!name.startsWith(":") && !reservedRequestHeaders.has(name)) out.push([name, value]);
  });
  return out;
}

interface AttemptOutcome {
  result: Omit<UpstreamResult, "attempts">;
  /** The upstream could not be reached: nothing was processed, a retry is safe. */
  unreachable: boolean;
  /** The upstream sent response headers. */
  answered: boolean;
}

/** One HTTP/2 stream to the upstream, from request headers to status. */
class UpstreamAttempt implements ClientStreamHandler, Expiring {
  readonly done: Promise<AttemptOutcome>;
  private readonly call: UpstreamCall;
  private resolve!: (outcome: AttemptOutcome) => void;
  private stream: ClientStream | undefined;
  /** Its place in `callDeadlines` (deadline-queue.ts). */
  dueMs = 0;
  queueIndex = -1;
  private readonly onAbort = () => this.cancel(Code.Canceled, "the operation was aborted");
  private finished = false;
  private header: ResponseFields | undefined;
  private trailer: ResponseFields | undefined;
  /** Response headers carried the status (a trailers-only response). */
  private trailersOnly = false;
  private gzip = false;
  private firstMessage = true;
  private readonly reader = new GrpcFrameReader(maxResponseMessageBytes);

  constructor(call: UpstreamCall, headers: readonly HeaderField[], timeoutMs: number) {
    this.call = call;
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    // On the process's one deadline heap: two numbers instead of a timer set and cleared per call.
    callDeadlines.add(this, timeoutMs);
    call.signal.addEventListener("abort", this.onAbort, { once: true });
    let stream: ClientStream;
    try {
      stream = call.transport
        .session()
        .request([...headers, ["grpc-timeout", formatGrpcTimeout(timeoutMs)]], this);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.stream = stream;
    if (this.finished) {
      stream.reset();
      return;
    }
    void this.writeRequests(stream);
  }

  /** The attempt's deadline passed (from `callDeadlines`). */
  expire(): void {
    this.cancel(Code.DeadlineExceeded, "deadline exceeded");
  }

  /** A header block: the response's headers, then its trailers. */
  headers(fields: HeaderField[], _endStream: boolean): void {
    if (this.finished) return;
    if (this.header === undefined) {
      this.onResponse(fields);
      return;
    }
    try {
      this.trailer = ResponseFields.from(fields);
    } catch (err) {
      this.cancel(Code.Internal, `invalid response trailer: ${errorText(err)}`);
    }
  }

  data(bytes: Uint8Array, _endStream: boolean): void {
    if (bytes.length > 0) this.onData(bytes);
  }

  closed(rstCode: number, error: Error | undefined): void {
    if (error) this.fail(error);
    else this.onClose(rstCode);
  }

  private async writeRequests(stream: ClientStream): Promise<void> {
    try {
      const source = this.call.requests();
      for (;;) {
        const chunk = source.take();
        if (chunk === undefined) {
          await source.wait();
          if (this.finished || stream.closed) return;
          continue;
        }
        const { messages, ended } = chunk;
        // The messages that have arrived leave in one write (up to maxFramesWriteBytes), the
        // request's end with the last of them.
        for (let i = 0; i < messages.length; ) {
          if (this.finished || stream.closed) return;
          let bytes: Uint8Array;
          let prefix: Uint8Array | undefined;
          if (i === messages.length - 1) {
            // One message (a unary request's): its head and it leave in one DATA frame,
            // copied once, with no framed buffer made for them.
            bytes = messages[i] as Uint8Array;
            prefix = grpcPrefix(bytes.byteLength);
            i++;
          } else {
            const framed = grpcFrames(messages, i, maxFramesWriteBytes);
            bytes = framed.bytes;
            i = framed.next;
          }
          if (ended && i === messages.length) {
            stream.write(bytes, true, prefix);
            return;
          }
          if (!stream.write(bytes, false, prefix)) await stream.drained();
        }
        if (this.finished || stream.closed) return;
        if (ended) {
          stream.write(noBytes, true);
          return;
        }
      }
    } catch (err) {
      // The request stream itself failed: the call cannot be made as asked.
      this.cancel(Code.Internal, `request stream failed: ${errorText(err)}`);
    }
  }

  private onResponse(fields: HeaderField[]): void {
    let header: ResponseFields;
    try {
      header = ResponseFields.from(fields);
    } catch (err) {
      this.header = ResponseFields.empty;
      this.cancel(Code.Internal, `invalid response header: ${errorText(err)}`);
      return;
    }
    this.header = header;
    const status = Number(fields.find(([name]) => name === ":status")?.[1] ?? 0);
    if (status !== 200) {
      // Not a gRPC answer (a proxy's, say): the HTTP status decides, as gRPC's mapping says.
      this.finish(
        {
          code: codeFromHttpStatus(status),
          message: `HTTP ${status}`,
          header,
          trailer: ResponseFields.empty,
        },
        codeFromHttpStatus(status) === Code.Unavailable && !header.has("grpc-status"),
      );
      return;
    }
    const contentType = header.get("content-type") ?? "";
    if (!/^application\/grpc(?:[+;]|$)/i.test(contentType)) {
      this.finish(
        {
          code: Code.Unknown,
          message: `unsupported content type ${contentType}`,
          header,
          trailer: ResponseFields.empty,
        },
        false,
      );
      return;
    }
    this.call.onAnswered?.();
    if (header.has("grpc-status")) this.trailersOnly = true;
    const encoding = header.get("grpc-encoding")?.toLowerCase();
    if (encoding === "gzip") this.gzip = true;
    else if (encoding !== undefined && encoding !== "identity") {
      this.finish(
        {
          code: Code.Internal,
          message: `unsupported response encoding "${encoding}"`,
          header,
          trailer: ResponseFields.empty,
        },
        false,
      );
    }
  }

  private onData(chunk: Uint8Array): void {
    if (this.finished) return;
    let frames: ReturnType<GrpcFrameReader["push"]>;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      const code = err instanceof FrameTooLargeError ? Code.ResourceExhausted : Code.Internal;
      this.cancel(code, errorText(err));
      return;
    }
    for (const frame of frames) {
      let bytes = frame.bytes;
      if (frame.compressed) {
        if (!this.gzip) {
          this.cancel(Code.Internal, "compressed message without grpc-encoding");
          return;
        }
        try {
          bytes = new Uint8Array(gunzipSync(bytes));
        } catch (err) {
          this.cancel(Code.Internal, `invalid gzip message: ${errorText(err)}`);
          return;
        }
      }
      const header = this.firstMessage ? this.header : undefined;
      this.firstMessage = false;
      this.call.onMessage(bytes, header);
      if (this.finished) return;
    }
  }

  private onClose(rst: number): void {
    if (this.finished) return;
    const statusSource = this.trailersOnly ? this.header : this.trailer;
    if (statusSource?.has("grpc-status")) {
      const { code, message } = statusFromTrailer(statusSource);
      this.finish(
        {
          fromUpstream: true,
          code,
          ...(message ? { message } : {}),
          header: this.firstMessage ? this.header : undefined,
          trailer: this.trailersOnly
            ? ResponseFields.empty
            : (this.trailer ?? ResponseFields.empty),
        },
        false,
      );
      return;
    }
    if (rst !== h2Errors.noError) {
      this.finish(
        {
          code: codeFromResetCode(rst),
          message: `http/2 stream closed with error code ${rst}`,
          header: this.firstMessage ? this.header : undefined,
          trailer: ResponseFields.empty,
        },
        rst === h2Errors.refusedStream,
      );
      return;
    }
    this.finish(
      {
        code: this.header ? Code.Internal : Code.Unavailable,
        message: this.header ? "protocol error: missing status" : "upstream closed the stream",
        header: this.firstMessage ? this.header : undefined,
        trailer: this.trailer ?? ResponseFields.empty,
      },
      false,
    );
  }

  /** A stream or session error: unreachable when nothing could have reached the upstream. */
  private fail(err: unknown): void {
    if (this.finished) return;
    const { code, unreachable, reason } = statusFromStreamError(err, this.header !== undefined);
    this.finish(
      {
        code,
        message: reason ?? errorText(err),
        header: this.firstMessage ? this.header : undefined,
        trailer: this.trailer ?? ResponseFields.empty,
      },
      unreachable,
    );
  }

  /** Ends the call from this side (deadline, abort, bad response) and resets the stream. */
  private cancel(code: Code, message: string): void {
    if (this.finished) return;
    this.finish(
      {
        code,
        message,
        header: this.firstMessage ? this.header : undefined,
        trailer: this.trailer ?? ResponseFields.empty,
      },
      false,
    );
  }

  private finish(result: AttemptOutcome["result"], unreachable: boolean): void {
    if (this.finished) return;
    this.finished = true;
    callDeadlines.remove(this);
    this.call.signal.removeEventListener("abort", this.onAbort);
    // Resets the stream unless both sides ended it (the request may still be going out).
    this.stream?.reset(h2Errors.cancel);
    this.resolve({ result, unreachable, answered: this.header !== undefined });
  }
}

const noBytes = new Uint8Array(0);

function failure(code: number, message: string, attempts: number): UpstreamResult {
  return { code, message, trailer: ResponseFields.empty, attempts };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal: CancelSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
