/**
 * Ends and trailers of server streams, sent together for the streams finished in one turn.
 * Under Bun each stream's end flushes the session's socket on its own, right after its
 * 'wantTrailers' handler: a server answering calls one event at a time makes a socket write
 * per call, and trailers sent from the handler make one more per call even when the calls
 * were answered together. Trailers queued for a microtask leave with the turn's other
 * frames; ends queued for the next check phase gather calls answered from separate events.
 * A server answering h2load (4 connections × 16 streams): 24,700 socket writes for 30,000
 * calls before, 3,900 after, and 2–3× the calls/s. Node's HTTP/2 batches frames either way.
 */
import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";

let ends: (() => void)[] = [];

function runEnds(): void {
  const pending = ends;
  ends = [];
  for (const end of pending) {
    try {
      end();
    } catch (error) {
      // The others still end; the failure surfaces as it would have where `end` was queued.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

/** Runs `end` with the other stream ends of this turn. */
export function endSoon(end: () => void): void {
  ends.push(end);
  if (ends.length === 1) setImmediate(runEnds);
}

interface PendingTrailers {
  stream: ServerHttp2Stream;
  trailers: OutgoingHttpHeaders;
}

let trailerQueue: PendingTrailers[] = [];

function sendQueuedTrailers(): void {
  const pending = trailerQueue;
  trailerQueue = [];
  for (const { stream, trailers } of pending) sendTrailersNow(stream, trailers);
}

function sendTrailersNow(stream: ServerHttp2Stream, trailers: OutgoingHttpHeaders): void {
  // Reset by the client meanwhile: nothing to finish.
  if (stream.destroyed || stream.closed) return;
  try {
    stream.sendTrailers(trailers);
  } catch {
    stream.close(0x2); // INTERNAL_ERROR
  }
}

/**
 * A stream whose session writes every frame queued in a turn together (the gateway's own
 * HTTP/2 session, src/h2/server-session.ts): its trailers need no queue of their own.
 */
export interface TurnGatheredStream {
  readonly framesGatheredPerTurn: true;
}

function gathersFrames(stream: object): boolean {
  return (stream as Partial<TurnGatheredStream>).framesGatheredPerTurn === true;
}

/**
 * Sends `trailers` on `stream` (from its 'wantTrailers' event) with the turn's others. On a
 * stream of the gateway's own session they are queued at once: a microtask later, they would
 * miss the session's flush that the response's HEADERS already asked for, and a unary answer
 * would leave in two socket writes (HEADERS, then DATA with the trailers) instead of one.
 */
export function sendTrailersSoon(stream: ServerHttp2Stream, trailers: OutgoingHttpHeaders): void {
  if (gathersFrames(stream)) {
    sendTrailersNow(stream, trailers);
    return;
  }
  trailerQueue.push({ stream, trailers });
  // A microtask: after every stream ended in this turn asked, before the turn's flush.
  if (trailerQueue.length === 1) queueMicrotask(sendQueuedTrailers);
}
