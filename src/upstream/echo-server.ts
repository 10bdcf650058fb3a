/**
 * The example upstream: `grpc.examples.echo.Echo` over h2c (docs/contract.md: The example), with test hooks in
 * the request text so scenarios can ask for errors, delays and metadata round trips
 * without a second server. It records what it received so tests can assert on it.
 *
 * Hooks, read from the start of each request message's text, in any order:
 * - `error:<code>:<text>` fail the call with that gRPC code and message;
 * - `delay:<ms>:` wait first (a cancelled call stops waiting);
 * - `stream:<n>:` ServerStreamingEcho sends n messages instead of 10;
 * - `meta:` copy every `x-*` request metadata entry into the response headers and set
 *   trailer `x-trailer: t`.
 * Responses echo the request text unchanged, hooks included. A `grpc-timeout` that runs out
 * ends the call with DEADLINE_EXCEEDED; an unknown method answers UNIMPLEMENTED.
 *
 * The benchmark runs this server next to the gateway it measures, so uncompressed gRPC
 * (`application/grpc`, `application/grpc+proto`) is served straight off `node:http2`
 * streams with the two one-field messages coded by hand: a connect-es router costs several
 * times the CPU per call (echo-native-grpc.ts). Every other request (Connect, gRPC-Web,
 * gRPC with JSON or a `grpc-encoding`) goes to a connect-es router with the same behaviour,
 * built on first use (echo-connect-routes.ts). The hooks are parsed in echo-hooks.ts.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { isGrpcProtoContentType } from "../grpc/metadata.ts";
import { openRelay, serveOwnSession } from "../north/own-http2.ts";
import {
  connectionWindowBytes,
  http2WindowSettings,
  streamWindowBytes,
  widenConnectionWindow,
} from "../runtime/http2-windows.ts";
import { connectRoutes } from "./echo-connect-routes.ts";
import { serveGrpc } from "./echo-native-grpc.ts";

export interface EchoRequestLog {
  /** Simple method name, e.g. "UnaryEcho". */
  method: string;
  headers: Headers;
  /** Request message texts, appended as they arrive. */
  messages: string[];
  /**
   * The client reset the stream (RST_STREAM) rather than only ending its request (node:http2
   * emits `end` for both, then `aborted` for a reset).
   */
  reset: boolean;
}

export interface EchoServer {
  port: number;
  /** Calls received per simple method name. */
  calls: Map<string, number>;
  requests: EchoRequestLog[];
  close(): Promise<void>;
}

/**
 * Starts the echo upstream on h2c; `port` 0 (default) picks a free port. `recordRequests`
 * (default true, for tests) keeps every request in `requests`: a long-running server turns
 * it off so memory does not grow with each call. `http2: "own"` serves the connections with
 * the gateway's own HTTP/2 session (north's, src/h2/server-session.ts), uncompressed gRPC on
 * it and every other stream relayed to the runtime's server: the benchmark's upstream, where
 * the runtime's HTTP/2 server cost about four times the CPU per call; default `node`.
 */
export async function startEchoServer(
  opts: { host?: string; port?: number; recordRequests?: boolean; http2?: "own" | "node" } = {},
): Promise<EchoServer> {
  const calls = new Map<string, number>();
  const requests: EchoRequestLog[] = [];
  const recordRequests = opts.recordRequests ?? true;
  const begin: BeginEchoCall = (method, headers) => {
    calls.set(method, (calls.get(method) ?? 0) + 1);
    const log = new RequestLog(method, headers);
    if (recordRequests) requests.push(log);
    return log;
  };

  let fallback: http2.Http2Server | undefined;
  const server = http2.createServer({ settings: http2WindowSettings });
  server.on("session", widenConnectionWindow);
  // Node passes the raw header list as a fourth argument, which its compatibility layer reads.
  server.on("stream", (stream, headers, flags, rawHeaders?: string[]) => {
    if (isNativeGrpc(headers)) {
      serveGrpc(stream, headers, begin);
      return;
    }
    // A server that never listens, handed the stream: its compatibility layer makes the
    // request and response objects connect-node expects (this works in Node, Bun and Deno).
    fallback ??= http2.createServer(connectNodeAdapter({ routes: connectRoutes(begin) }));
    fallback.emit("stream", stream, headers, flags, rawHeaders);
  });
  const sessions = new Set<{ destroy(): void }>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  // The own session: the server above takes what is not native gRPC, over an in-memory
  // connection per client connection.
  const listening: net.Server | http2.Http2Server =
    opts.http2 === "own"
      ? net.createServer((socket) => {
          socket.setNoDelay(true);
          const session = serveOwnSession(socket, undefined, {
            maxConcurrentStreams: 1000,
            maxHeaderListBytes: 64 * 1024,
            streamWindowBytes,
            connectionWindowBytes,
            native(stream, headers) {
              if (!isNativeGrpc(headers)) return false;
              serveGrpc(stream as unknown as http2.ServerHttp2Stream, headers, begin);
              return true;
            },
            openRelay: () =>
              openRelay(
                socket,
                (inner) => server.emit("connection", inner),
                () => {},
              ),
            onClose: () => sessions.delete(session),
          });
          sessions.add(session);
        })
      : server;
  await new Promise<void>((resolve, reject) => {
    listening.once("error", reject);
    listening.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      listening.off("error", reject);
      resolve();
    });
  });

  return {
    port: (listening.address() as net.AddressInfo).port,
    calls,
    requests,
    close() {
      return new Promise((resolve) => {
        listening.close(() => resolve());
        // Open client sessions would keep the server alive; tests want it gone now.
        for (const session of sessions) session.destroy();
      });
    },
  };
}

/** Uncompressed protobuf gRPC, which the echo serves straight off the stream. */
function isNativeGrpc(headers: http2.IncomingHttpHeaders): boolean {
  const encoding = headers["grpc-encoding"];
  return (
    headers[":method"] === "POST" &&
    isGrpcProtoContentType(headers["content-type"]) &&
    (encoding === undefined || encoding === "identity")
  );
}

/** Counts and logs a call; both of the echo's paths call it when a call starts. */
export type BeginEchoCall = (
  method: string,
  headers: Headers | http2.IncomingHttpHeaders,
) => EchoRequestLog;

/**
 * A log entry whose `Headers` are made when first read: tests read a few, and a benchmark,
 * which makes millions of calls and reads none, would spend its time making them.
 */
class RequestLog implements EchoRequestLog {
  readonly method: string;
  readonly messages: string[] = [];
  reset = false;
  private raw: Headers | http2.IncomingHttpHeaders;

  constructor(method: string, headers: Headers | http2.IncomingHttpHeaders) {
    this.method = method;
    this.raw = headers;
  }

  get headers(): Headers {
    if (!(this.raw instanceof Headers)) this.raw = webHeaders(this.raw);
    return this.raw;
  }
}

/** Request metadata as the log keeps it: Fetch `Headers`, pseudo-headers left out. */
function webHeaders(raw: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const name in raw) {
    const value = raw[name];
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(name, v);
    else out.append(name, value);
  }
  return out;
}
