/**
 * The connection a call came on, as the call gate needs it: a key its sessions are shared
 * under, and the client certificate the TLS handshake verified.
 */
import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ConnectionInfo } from "./authorize.ts";

/** The connection of a native HTTP/2 stream. */
export function connectionOfStream(stream: ServerHttp2Stream): ConnectionInfo {
  const session = stream.session;
  return connectionOf(session ?? stream, () => session?.socket);
}

/** The connection of a request (HTTP/2 compatibility layer or HTTP/1.1). */
export function connectionOfRequest(req: Http2ServerRequest | IncomingMessage): ConnectionInfo {
  const session = "stream" in req ? req.stream?.session : undefined;
  return connectionOf(session ?? req.socket, () => session?.socket ?? req.socket);
}

function connectionOf(key: object, socket: () => Socket | TLSSocket | undefined): ConnectionInfo {
  return {
    key,
    peerCertificate: () => peerCertificateOf(socket()),
  };
}

/** The verified client certificate of a TLS socket, if it presented one. */
function peerCertificateOf(socket: Socket | TLSSocket | undefined): X509Certificate | undefined {
  const tls = socket as Partial<TLSSocket> | undefined;
  if (tls?.authorized !== true) return undefined;
  try {
    const x509 = tls.getPeerX509Certificate?.();
    if (x509) return x509;
    // Runtimes without getPeerX509Certificate still give the DER.
    const raw = tls.getPeerCertificate?.()?.raw;
    return raw && raw.length > 0 ? new X509Certificate(raw) : undefined;
  } catch {
    return undefined;
  }
}
