/**
 * One listening socket of the front door. Plain TCP speaks h2c (HTTP/2 prior knowledge) and,
 * sniffed from the first bytes, HTTP/1.1 — so gRPC-Web, Connect and health probes work on
 * the same port; TLS negotiates h2 or http/1.1 by ALPN and, when server names are listed,
 * completes the handshake only for those names (SNI). A TLS client that offers no ALPN gets
 * HTTP/1.1 when the config's `alpn` lists it, else HTTP/2 (or is refused). Either way a connection ends
 * up in one HTTP/2 server or one HTTP/1.1 server; HTTP/2 streams go to the native stream
 * handler first, and only the ones it declines get Node's request/response objects. Every
 * connection is admitted and watched by the binding's connection guard (connection-guard.ts).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import tls from "node:tls";
import { defaultTlsCiphers, type EdgeLimits, type NorthListener } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import {
  connectionWindowBytes,
  http2WindowSettings,
  streamWindowBytes,
  widenConnectionWindow,
} from "../runtime/http2-windows.ts";
import {
  type ConnectionGuard,
  type GuardedConnection,
  guardSessionOf,
  type StreamWatch,
  type WatchedStream,
  watchOfStream,
} from "./connection-guard.ts";
import { type OwnCallStream, openRelay, serveOwnSession } from "./own-http2.ts";

export type NorthRequestHandler = (
  req: Http2ServerRequest | IncomingMessage,
  res: Http2ServerResponse | ServerResponse,
  watch?: StreamWatch,
) => void;

/** Serves an HTTP/2 stream directly; false leaves it to the request handler. */
export type NorthStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
  watch: StreamWatch | undefined,
) => boolean;

export interface NorthHandlers {
  stream: NorthStreamHandler;
  request: NorthRequestHandler;
}

export interface BoundListener {
  /** The port actually bound (differs from the configured one when that was 0). */
  readonly port: number;
  /** Stops accepting connections and asks open ones to finish (HTTP/2 GOAWAY). */
  stopAccepting(): void;
  /** Closes every connection still open. */
  destroy(): void;
}

// The HTTP/2 connection preface starts with these bytes; no HTTP/1.x method does.
const h2Preface = Buffer.from("PRI * HTTP/2.0");
/** How the first bytes reach the HTTP/2 session after sniffing differs by runtime. */
const reemitFirstBytes =
  typeof (process.versions as Record<string, string | undefined>).bun === "string";

/**
 * Which HTTP/2 server the front door runs: the gateway's own session (default; streams other
 * than native gRPC calls are relayed to the runtime's), or the runtime's `node:http2` for
 * every stream (`GATEWAY_NORTH_HTTP2=node`, a fallback; docs/architecture.md).
 */
export function northHttp2Engine(): "own" | "node" {
  return process.env.GATEWAY_NORTH_HTTP2 === "node" ? "node" : "own";
}

/** The HTTP/2 SETTINGS the front door announces (and its runtime enforces). */
export function northHttp2Settings(limits: EdgeLimits): http2.Settings {
  return {
    ...http2WindowSettings,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxHeaderListSize: limits.maxHeaderListBytes,
  };
}

/** Binds one listener and serves `handlers` on it, under `guard`. */
export async function listenNorth(
  listener: NorthListener,
  handlers: NorthHandlers,
  guard: ConnectionGuard,
  logger: Logger,
): Promise<BoundListener> {
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const connectionOf = new WeakMap<object, GuardedConnection>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  // 'session' is emitted while the socket is handed over (so in every runtime): the
  // connection being handed over is the session's.
  let handingOver: GuardedConnection | undefined;
  // A relay connection (own-http2.ts) belongs to its client's connection, whose own session
  // is the one the guard PINGs and closes.
  let relayingFor: GuardedConnection | undefined;
  const trackSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A broken connection is the client's problem; the process must not notice.
    session.on("error", (error) => logger.debug("http2 session error", { error }));
    if (handingOver) {
      connectionOf.set(session, handingOver);
      handingOver.attachSession(guardSessionOf(session));
    } else if (relayingFor) connectionOf.set(session, relayingFor);
  };
  const ownSessions = new Set<{ close(): void; destroy(): void }>();
  const engine = northHttp2Engine();

  const h2 = http2.createServer({ settings: northHttp2Settings(guard.limits) });
  h2.on("session", trackSession);
  h2.on("session", widenConnectionWindow);
  h2.on(
    "stream",
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      _flags: number,
      rawHeaders: string[],
    ) => {
      const watch = watchStream(stream, connectionOf.get(stream.session as object));
      if (handlers.stream(stream, headers, rawHeaders, watch)) return;
      // What Node's compatibility layer does per stream, for the streams that need it.
      handlers.request(
        new http2.Http2ServerRequest(stream, headers, {}, rawHeaders),
        new http2.Http2ServerResponse(stream),
        watch,
      );
    },
  );
  const h1 = http.createServer((req, res) => {
    const connection = connectionOf.get(req.socket);
    const watch = connection?.callOpened(res);
    if (watch) {
      req.once("end", () => watch.requestEnded());
      res.once("close", () => connection?.streamClosed(watch, false));
    }
    handlers.request(req, res, watch);
  });

  const toH2 = (socket: Socket, connection: GuardedConnection, seen?: Buffer) => {
    if (engine === "own") {
      toOwnH2(socket, connection, seen);
      return;
    }
    // Node's HTTP/2 session takes bytes already read from the socket's buffer; Bun's reads
    // 'data' events and does not see unshifted bytes.
    if (seen && !reemitFirstBytes) socket.unshift(seen);
    handingOver = connection;
    try {
      h2.emit("connection", socket);
    } finally {
      handingOver = undefined;
    }
    if (seen && reemitFirstBytes) {
      socket.emit("data", seen);
      socket.resume();
    }
  };
  const toOwnH2 = (socket: Socket, connection: GuardedConnection, seen?: Buffer) => {
    const session = serveOwnSession(socket, connection, {
      maxConcurrentStreams: guard.limits.maxConcurrentStreams,
      maxHeaderListBytes: guard.limits.maxHeaderListBytes,
      streamWindowBytes,
      connectionWindowBytes,
      native: (stream: OwnCallStream, headers, raw, watch) =>
        handlers.stream(stream as unknown as http2.ServerHttp2Stream, headers, raw, watch),
      openRelay: () =>
        openRelay(
          socket,
          (inner) => {
            relayingFor = connection;
            try {
              h2.emit("connection", inner);
            } finally {
              relayingFor = undefined;
            }
          },
          (error) => logger.debug("http2 relay error", { error }),
        ),
      onClose: (s) => ownSessions.delete(s),
    });
    ownSessions.add(session);
    if (seen) session.feed(seen);
    socket.resume();
  };
  const toH1 = (socket: Socket, connection: GuardedConnection) => {
    connectionOf.set(socket, connection);
    h1.emit("connection", socket);
  };

  let server: net.Server;
  const listenerTls = listener.tls;
  if (listenerTls) {
    const secure = tls.createServer(secureOptions(listenerTls));
    // Raw sockets wait here for their handshake, by client address (the TLS socket is a
    // different object in Node, the same one in Bun).
    const handshaking = new Map<string, GuardedConnection>();
    const endpoint = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
    secure.on("connection", (socket: Socket) => {
      socket.setNoDelay(true);
      const connection = guard.admit(socket);
      if (!connection) return;
      track(socket);
      const key = endpoint(socket);
      handshaking.set(key, connection);
      socket.once("close", () => {
        if (handshaking.get(key) === connection) handshaking.delete(key);
      });
    });
    const allowH1 = (listenerTls.alpn ?? ["h2", "http/1.1"]).includes("http/1.1");
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      const key = endpoint(socket);
      const connection = handshaking.get(key);
      handshaking.delete(key);
      if (!connection) {
        socket.destroy();
        return;
      }
      connection.addSocket(socket);
      track(socket);
      if (!clientCertificateAcceptable(listenerTls, socket)) {
        logger.debug("tls client certificate refused", { error: socket.authorizationError });
        socket.destroy();
        return;
      }
      if (socket.alpnProtocol === "h2") toH2(socket, connection);
      else if (socket.alpnProtocol === "http/1.1") toH1(socket, connection);
      // No ALPN: HTTP/1.1 (what a client without ALPN speaks) only where the config lists it,
      // else HTTP/2, which refuses anything but an HTTP/2 preface (GOAWAY, then close).
      else if (allowH1) toH1(socket, connection);
      else {
        // The http2 server answers a TLS socket without ALPN with a 403 page (it expects
        // HTTP/1.1 there); here the config chose HTTP/2, so the socket says so.
        Object.defineProperty(socket, "alpnProtocol", { value: "h2", configurable: true });
        toH2(socket, connection);
      }
    });
    secure.on("tlsClientError", (error) => logger.debug("tls handshake failed", { error }));
    server = secure;
  } else {
    server = net.createServer((socket) => {
      // Bun sets TCP_NODELAY on accepted sockets; Node does not, and a reply written behind
      // another unacknowledged one would wait for the client's delayed ACK.
      socket.setNoDelay(true);
      const connection = guard.admit(socket);
      if (!connection) return;
      track(socket);
      handOver(socket, connection, toH2, toH1);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listener.port, listener.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => logger.error("north listener error", { error }));

  return {
    port: (server.address() as AddressInfo).port,
    stopAccepting() {
      server.close();
      for (const session of sessions) session.close();
      for (const session of ownSessions) session.close();
      h1.closeIdleConnections();
    },
    destroy() {
      for (const session of sessions) session.destroy();
      for (const session of ownSessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Starts watching a stream of a guarded connection; its close ends the watch. */
function watchStream(
  stream: http2.ServerHttp2Stream,
  connection: GuardedConnection | undefined,
): StreamWatch | undefined {
  if (!connection) return undefined;
  const watch = connection.callOpened(stream);
  (stream as WatchedStream)[watchOfStream] = watch;
  // 'on', not 'once': the listener clears itself, and once would wrap it in a closure.
  stream.on("close", onWatchedStreamClose);
  return watch;
}

function onWatchedStreamClose(this: WatchedStream): void {
  const watch = this[watchOfStream];
  if (!watch) return;
  this[watchOfStream] = undefined;
  watch.connection.streamClosed(watch, this.aborted);
}

type HandOver = (socket: Socket, connection: GuardedConnection, seen?: Buffer) => void;

/** Reads enough of the first bytes to tell HTTP/2 from HTTP/1.x, then gives the socket over. */
function handOver(socket: Socket, connection: GuardedConnection, toH2: HandOver, toH1: HandOver) {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, h2Preface.length);
    const isH2 = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (isH2 && seen.length < h2Preface.length) return;
    socket.off("data", onData);
    socket.pause();
    if (isH2) {
      // The sniffed bytes go with the socket (each HTTP/2 server takes them its own way).
      toH2(socket, connection, seen);
    } else {
      socket.unshift(seen);
      toH1(socket, connection);
      // The HTTP/1 parser reads through 'data' events, which a paused socket never emits.
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}

type TlsOptions = NonNullable<NorthListener["tls"]>;

function secureOptions(config: TlsOptions): tls.TlsOptions {
  const credentials: tls.SecureContextOptions = {
    ...(config.cert !== undefined ? { cert: config.cert } : {}),
    ...(config.key !== undefined ? { key: config.key } : {}),
    ...(config.pfx !== undefined ? { pfx: Buffer.from(config.pfx) } : {}),
    ...(config.passphrase !== undefined ? { passphrase: config.passphrase } : {}),
    // The CAs client certificates must chain to (mutual TLS).
    ...(config.mutual && config.ca ? { ca: config.ca } : {}),
  };
  const base: tls.TlsOptions = {
    // gRPC-Web and Connect also run over HTTP/1.1; ALPN still prefers h2.
    ALPNProtocols: config.alpn ?? ["h2", "http/1.1"],
    // mutual: required refuses the handshake without a valid certificate; requested lets a
    // client without one in (clientCertificateAcceptable refuses an invalid one).
    ...(config.mutual
      ? { requestCert: true, rejectUnauthorized: config.mutual === "required" }
      : {}),
    // TLS 1.2 with forward secrecy and AEAD only, and TLS 1.3 (docs/security.md).
    minVersion: config.minVersion ?? "TLSv1.2",
    ciphers: config.ciphers ?? defaultTlsCiphers,
    honorCipherOrder: true,
  };
  if (!config.sni?.length) return { ...base, ...credentials };
  // With names listed there is no default certificate: a handshake without a listed server
  // name finds no certificate and fails, which is the check.
  const context = tls.createSecureContext({ ...credentials, ...tlsPolicy(base) });
  const names = config.sni.map((n) => n.toLowerCase());
  return {
    ...base,
    SNICallback: (servername, callback) => {
      if (names.some((pattern) => serverNameMatches(pattern, servername.toLowerCase()))) {
        callback(null, context);
      } else {
        callback(new Error(`server name ${servername} is not served`));
      }
    },
  };
}

/** With mutual: requested, a client may send no certificate, but not one that fails to verify. */
function clientCertificateAcceptable(config: TlsOptions, socket: tls.TLSSocket): boolean {
  if (config.mutual !== "requested" || socket.authorized) return true;
  const certificate = socket.getPeerCertificate?.();
  return !certificate || Object.keys(certificate).length === 0;
}

/** The version and cipher policy, for a secure context made apart from the server. */
function tlsPolicy(base: tls.TlsOptions): tls.SecureContextOptions {
  return {
    ...(base.minVersion ? { minVersion: base.minVersion } : {}),
    ...(base.ciphers ? { ciphers: base.ciphers } : {}),
    ...(base.honorCipherOrder ? { honorCipherOrder: base.honorCipherOrder } : {}),
  };
}

/** "api.example.com" matches itself; "*.example.com" matches one label in front. */
function serverNameMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith("*.")) return pattern === name;
  const suffix = pattern.slice(1);
  return name.endsWith(suffix) && !name.slice(0, -suffix.length).includes(".");
}
