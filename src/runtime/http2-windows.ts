/**
 * HTTP/2 flow-control windows for the gateway's sessions (north's server, west's upstream
 * client, the echo upstream). HTTP/2 starts every stream and every connection with a 64 KiB
 * receive window; with hundreds of concurrent calls on one connection, 64 KiB for the whole
 * connection makes large messages wait for WINDOW_UPDATE round trips through a busy event
 * loop (unary 10 KiB at 256 concurrent calls: p99 of seconds). Larger windows let the peer
 * send what the calls already hold; data is read off the socket as it arrives either way.
 */
import type * as http2 from "node:http2";

/** Per-stream receive window announced in SETTINGS. */
export const streamWindowBytes = 1024 * 1024;
/** Receive window of the whole connection. */
export const connectionWindowBytes = 16 * 1024 * 1024;

/** SETTINGS for createServer / connect. */
export const http2WindowSettings: http2.Settings = { initialWindowSize: streamWindowBytes };

/** Widens a session's connection-level receive window (where the runtime supports it). */
export function widenConnectionWindow(session: http2.Http2Session): void {
  try {
    session.setLocalWindowSize?.(connectionWindowBytes);
  } catch {
    // A session closing already, or a runtime without it: the default window still works.
  }
}
