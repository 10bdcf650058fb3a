/**
 * West's upstream gRPC client: one HTTP/2 connection per upstream authority (Connect's gRPC
 * transport), every call made as a bidi stream so all four call shapes take one path, and
 * message bytes passed through untouched.
 *
 * Passthrough: calls use a method descriptor whose input and output are
 * `google.protobuf.Empty`. Every field of a message is then an unknown field, which
 * protobuf-es keeps with its raw bytes and writes back in order, so what leaves is what came
 * in, byte for byte, without knowing the schema. The same path serves methods that are not
 * in `gen/` at all, and costs one field scan per message instead of a full decode and encode.
 */
import {
  type DescMethodBiDiStreaming,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { type Empty, EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { KafkaGrpcRoute } from "../config/types.ts";

export type UpstreamTarget = KafkaGrpcRoute["with"];

/** Transports by upstream, each over one multiplexed HTTP/2 connection. */
export interface UpstreamPool {
  transportFor(target: UpstreamTarget): Transport;
  /** Closes every connection (open calls fail). */
  close(): void;
}

/** A pool that opens a connection per distinct upstream on first use. */
export function createUpstreamPool(): UpstreamPool {
  const entries = new Map<string, { transport: Transport; sessions: Http2SessionManager }>();
  return {
    transportFor(target) {
      const id = JSON.stringify([target.scheme, target.authority, target.tls ?? null]);
      let entry = entries.get(id);
      if (!entry) {
        const baseUrl = `${target.scheme}://${target.authority}`;
        const sessions = new Http2SessionManager(baseUrl, {}, tlsSessionOptions(target));
        const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
        entry = { transport, sessions };
        entries.set(id, entry);
      }
      return entry.transport;
    },
    close() {
      for (const entry of entries.values()) entry.sessions.abort();
      entries.clear();
    },
  };
}

function tlsSessionOptions(target: UpstreamTarget) {
  const tls = target.tls;
  if (target.scheme !== "https" || !tls) return undefined;
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.sni ? { servername: tls.sni } : {}),
    ALPNProtocols: tls.alpn ?? ["h2"],
    rejectUnauthorized: !tls.insecure,
  };
}

const passthroughMethods = new Map<string, DescMethodBiDiStreaming<typeof EmptySchema>>();

/**
 * A bidi method descriptor for `/<service>/<method>` whose messages are raw bytes
 * (see the file comment). Connect only reads the names, the kind and the two schemas.
 */
export function passthroughMethod(
  service: string,
  method: string,
): DescMethodBiDiStreaming<typeof EmptySchema> {
  const path = `${service}/${method}`;
  let desc = passthroughMethods.get(path);
  if (!desc) {
    const parent = { kind: "service", typeName: service, name: service, methods: [] };
    desc = {
      kind: "rpc",
      name: method,
      localName: method,
      methodKind: "bidi_streaming",
      input: EmptySchema,
      output: EmptySchema,
      parent: parent as unknown as DescService,
      toString: () => `rpc ${path}`,
    } as unknown as DescMethodBiDiStreaming<typeof EmptySchema>;
    parent.methods.push(desc as never);
    passthroughMethods.set(path, desc);
  }
  return desc;
}

/** Raw message bytes as a message Connect can send unchanged (fails on malformed protobuf). */
export function messageFromBytes(bytes: Uint8Array): Empty {
  return fromBinary(EmptySchema, bytes);
}

/** The bytes of a message read with `passthroughMethod`. */
export function bytesFromMessage(message: Empty): Uint8Array {
  return toBinary(EmptySchema, message);
}

export interface UpstreamCall {
  transport: Transport;
  service: string;
  method: string;
  /** Request metadata as carried in `meta:*` headers (`-bin` values stay base64 text). */
  metadata: readonly (readonly [string, string])[];
  /** Absolute deadline, epoch ms. */
  deadlineMs: number;
  signal: AbortSignal;
  /** The request messages from the first one on; called again for each retry. */
  requests: () => AsyncIterable<Empty>;
  retry: { initialBackoffMs: number; maxBackoffMs: number };
  /** The upstream answered (response headers): no retry can need the sent messages again. */
  onAnswered?: () => void;
  /** Each response message, with the response header on the first one only. */
  onMessage: (bytes: Uint8Array, header: Headers | undefined) => void;
  now?: () => number;
}

/** gRPC's OK, which Connect's `Code` leaves out (it only lists errors). */
export const statusOk = 0;

export interface UpstreamResult {
  /** gRPC status code: `statusOk` or a `Code`. */
  code: number;
  message?: string | undefined;
  /** Response header, when no message carried it (error or empty response stream). */
  header?: Headers | undefined;
  trailer: Headers;
  attempts: number;
}

/**
 * Runs one upstream call to the end and never throws: failures become a status. A
 * connection that cannot be made is retried with exponential backoff until the deadline;
 * once the upstream answered anything, its status is final.
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamResult> {
  const now = call.now ?? Date.now;
  const method = passthroughMethod(call.service, call.method);
  let backoffMs = call.retry.initialBackoffMs;
  let attempts = 0;
  let header: Headers;
  try {
    header = new Headers();
    for (const [name, value] of call.metadata) header.append(name, value);
  } catch (err) {
    return failure(Code.InvalidArgument, `invalid request metadata: ${errorText(err)}`, attempts);
  }

  for (;;) {
    const timeoutMs = call.deadlineMs - now();
    if (timeoutMs <= 0) return failure(Code.DeadlineExceeded, "deadline exceeded", attempts);
    attempts++;
    let response: Awaited<ReturnType<Transport["stream"]>>;
    try {
      response = await call.transport.stream(
        method,
        call.signal,
        timeoutMs,
        header,
        call.requests(),
      );
    } catch (err) {
      const error = ConnectError.from(err);
      // A server's own grpc-status (even UNAVAILABLE) is its answer; only a failure to
      // reach it at all is retried, and only while the deadline leaves room for a wait.
      const answered = error.metadata.has("grpc-status");
      const waitMs = Math.min(backoffMs, call.retry.maxBackoffMs);
      if (
        error.code === Code.Unavailable &&
        !answered &&
        !call.signal.aborted &&
        now() + waitMs < call.deadlineMs
      ) {
        await sleep(waitMs, call.signal);
        backoffMs = Math.min(backoffMs * 2, call.retry.maxBackoffMs);
        continue;
      }
      return { ...statusOf(error), header: error.metadata, trailer: new Headers(), attempts };
    }

    call.onAnswered?.();
    let first = true;
    try {
      for await (const message of response.message) {
        call.onMessage(bytesFromMessage(message as Empty), first ? response.header : undefined);
        first = false;
      }
      return {
        code: statusOk,
        header: first ? response.header : undefined,
        trailer: response.trailer,
        attempts,
      };
    } catch (err) {
      return {
        ...statusOf(ConnectError.from(err)),
        header: first ? response.header : undefined,
        trailer: response.trailer,
        attempts,
      };
    }
  }
}

function statusOf(error: ConnectError): { code: Code; message?: string } {
  return error.rawMessage ? { code: error.code, message: error.rawMessage } : { code: error.code };
}

function failure(code: number, message: string, attempts: number): UpstreamResult {
  return { code, message, trailer: new Headers(), attempts };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
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
