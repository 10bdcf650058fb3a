/**
 * HTTP/2 flow-control windows for the gateway's sessions (north's server, west's upstream
 * client, the echo upstream). HTTP/2 starts every stream and every connection with a 64 KiB
 * receive window; with hundreds of concurrent calls on one connection, 64 KiB for the whole
 * connection makes large messages wait for WINDOW_UPDATE round trips through a busy event
 * loop (unary 10 KiB at 256 concurrent calls: p99 of seconds). Larger windows let the peer
 * send what the calls already hold; data is read off the socket as it arrives either way.
 *
 * Bun (1.4): `setLocalWindowSize` widens the connection window but also raises the stream
 * window Bun expects to its own SETTINGS value, without telling the peer. Bun sends a stream's
 * WINDOW_UPDATE only once half the window it expects is used, so a peer still at the announced
 * window stops first and the stream stalls for good: requests over 1 MiB hung, a bidi stream
 * stopped after 1,048,320 bytes, a server-streaming reply after 5 × 200 kB. Announcing the
 * stream window again (a SETTINGS frame) puts both sides back on the same value. Node and Deno
 * keep stream and connection windows apart and need nothing.
 */
import type * as http2 from "node:http2";
import { runtimeName } from "./runtime.ts";

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
    // See above: Bun must be told the stream window again after widening the connection's.
    if (runtimeName === "bun") session.settings({ initialWindowSize: streamWindowBytes });
  } catch {
    // A session closing already, or a runtime without it: the default window still works.
  }
}
