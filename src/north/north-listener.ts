/**
 * One listening socket of the front door. Plain TCP speaks h2c (HTTP/2 prior knowledge) and,
 * sniffed from the first bytes, HTTP/1.1 — so gRPC-Web, Connect and health probes work on
 * the same port; TLS negotiates h2 or http/1.1 by ALPN and, when server names are listed,
 * completes the handshake only for those names (SNI). Either way a connection ends up in
 * one HTTP/2 server or one HTTP/1.1 server; HTTP/2 streams go to the native stream handler
 * first, and only the ones it declines get Node's request/response objects.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import tls from "node:tls";
import type { NorthListener } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { http2WindowSettings, widenConnectionWindow } from "../runtime/http2-windows.ts";

export type NorthRequestHandler = (
  req: Http2ServerRequest | IncomingMessage,
  res: Http2ServerResponse | ServerResponse,
) => void;

/** Serves an HTTP/2 stream directly; false leaves it to the request handler. */
export type NorthStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
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

/** Binds one listener and serves `handlers` on it. */
export async function listenNorth(
  listener: NorthListener,
  handlers: NorthHandlers,
  logger: Logger,
): Promise<BoundListener> {
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const trackSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A broken connection is the client's problem; the process must not notice.
    session.on("error", (error) => logger.debug("http2 session error", { error }));
  };

  const h2 = http2.createServer({ settings: http2WindowSettings });
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
      if (handlers.stream(stream, headers, rawHeaders)) return;
      // What Node's compatibility layer does per stream, for the streams that need it.
      handlers.request(
        new http2.Http2ServerRequest(stream, headers, {}, rawHeaders),
        new http2.Http2ServerResponse(stream),
      );
    },
  );
  const h1 = http.createServer(handlers.request);

  let server: net.Server;
  const tlsConfig = listener.tls;
  if (tlsConfig) {
    const secure = tls.createServer(secureOptions(tlsConfig));
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      track(socket);
      if (!clientCertificateAcceptable(tlsConfig, socket)) {
        logger.debug("tls client certificate refused", { error: socket.authorizationError });
        socket.destroy();
        return;
      }
      // ALPN chose the protocol; a client without ALPN speaks HTTP/1.1.
      (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
    });
    secure.on("tlsClientError", (error) => logger.debug("tls handshake failed", { error }));
    server = secure;
  } else {
    server = net.createServer((socket) => {
      track(socket);
      handOver(socket, h2, h1);
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
      h1.closeIdleConnections();
    },
    destroy() {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Reads enough of the first bytes to tell HTTP/2 from HTTP/1.x, then gives the socket over. */
function handOver(socket: Socket, h2: http2.Http2Server, h1: http.Server) {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, h2Preface.length);
    const isH2 = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (isH2 && seen.length < h2Preface.length) return;
    socket.off("data", onData);
    socket.pause();
    if (isH2) {
      if (reemitFirstBytes) {
        // Bun's HTTP/2 session reads 'data' events and does not see unshifted bytes.
        h2.emit("connection", socket);
        socket.emit("data", seen);
        socket.resume();
      } else {
        // Node's HTTP/2 session takes bytes already read from the socket's buffer.
        socket.unshift(seen);
        h2.emit("connection", socket);
      }
    } else {
      socket.unshift(seen);
      h1.emit("connection", socket);
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
  };
  if (!config.sni?.length) return { ...base, ...credentials };
  // With names listed there is no default certificate: a handshake without a listed server
  // name finds no certificate and fails, which is the check.
  const context = tls.createSecureContext(credentials);
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

/** "api.example.com" matches itself; "*.example.com" matches one label in front. */
function serverNameMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith("*.")) return pattern === name;
  const suffix = pattern.slice(1);
  return name.endsWith(suffix) && !name.slice(0, -suffix.length).includes(".");
}
