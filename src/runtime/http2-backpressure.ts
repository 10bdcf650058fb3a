/**
 * Reply bytes an HTTP/2 session holds that its client has not taken, beyond what each
 * stream's own write buffer shows. In Node and Deno a stream's writes wait in the stream
 * (`writableLength`) until the client's flow-control window lets them out, so this is 0. Bun
 * (1.4) moves a stream's writes into a queue of its own per session whatever the window, and
 * the stream's buffer drains: the queue's frame count (each at most 16 KiB) is all it shows.
 */
import type { Http2Session } from "node:http2";
import { runtimeName } from "./runtime.ts";

/** The largest DATA frame Bun queues (16 KiB less the frame header, rounded up). */
const queuedFrameBytes = 16 * 1024;

/** Bytes the runtime queues on `session` outside its streams' write buffers (an upper bound). */
export function sessionQueuedBytes(session: Http2Session): number {
  if (runtimeName !== "bun") return 0;
  try {
    const frames = (session.state as { outboundQueueSize?: number }).outboundQueueSize ?? 0;
    return frames * queuedFrameBytes;
  } catch {
    // A session already destroyed: nothing is queued any more.
    return 0;
  }
}

/** Bytes the session has written to its socket so far: what moves when a client reads. */
export function sessionBytesWritten(session: Http2Session): number {
  try {
    return session.socket?.bytesWritten ?? 0;
  } catch {
    return 0;
  }
}
