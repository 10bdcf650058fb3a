/**
 * One client connection: splits the byte stream into size-prefixed frames, handles them
 * strictly one at a time (Kafka answers each connection in request order, so a
 * long-polling Fetch holds back the requests behind it), and writes the responses. A
 * malformed frame closes this connection only.
 */
import type { Socket } from "node:net";
import { WireError } from "../kafka/protocol/wire.ts";
import type { FaultState } from "./broker-faults.ts";
import type { Dispatcher, FramedResponse, RequestSource } from "./dispatcher.ts";
import type { ArenaChunk, BatchArena } from "./log/batch-arena.ts";

/** Smallest frame that holds a request header's api key, version and correlation id. */
const MIN_FRAME_BYTES = 8;
/** Larger frames are refused outright (Kafka's socket.request.max.bytes is 100 MiB). */
const MAX_FRAME_BYTES = 100 * 1024 * 1024;
/** Stop reading when this many requests wait for their turn... */
const MAX_QUEUED_FRAMES = 256;
/** ...or when this much response data waits for the client to read it. */
const MAX_PENDING_WRITE_BYTES = 16 * 1024 * 1024;
/**
 * Response segments this large (a Fetch's stored batches) are written on their own rather
 * than corked with the rest: Bun's node:net joins corked writes into a fresh buffer, and
 * for large responses that buffer's allocation and copy cost more than the extra writes
 * (split gateway, unary 10 KiB at c=256: the broker's CPU per call 56–59 µs against 66–69).
 */
const LARGE_SEGMENT_BYTES = 16 * 1024;

/** What a connection needs from its broker. */
export interface ConnectionHost {
  dispatcher: Dispatcher;
  faults: FaultState;
  log: (line: string) => void;
  /** The log memory a response's stored batches live in: pinned until written. */
  arena: BatchArena;
}

interface DelayedResponse {
  readyAt: number;
  segments: Uint8Array[];
  pinned: ArenaChunk[] | undefined;
}

/** A client connection to the broker. */
export class BrokerConnection {
  private readonly socket: Socket;
  private readonly host: ConnectionHost;
  private readonly source: RequestSource;
  private readonly abort = new AbortController();
  /** Received bytes not yet cut into frames; the first chunk is consumed from `chunkAt`. */
  private chunks: Uint8Array[] = [];
  private chunkAt = 0;
  private buffered = 0;
  /** Frames waiting for their turn; `frameHead` is the next one. */
  private frames: Uint8Array[] = [];
  private frameHead = 0;
  /** A request is being handled asynchronously; later ones wait. */
  private busy = false;
  private closed = false;
  /** No more requests are handled; the connection ends once the responses so far are out. */
  private ending = false;
  /** Responses held back by latency injection or pause, in order. */
  private readonly outbox: DelayedResponse[] = [];
  private outboxTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(socket: Socket, id: number, host: ConnectionHost, onClose: () => void) {
    this.socket = socket;
    this.host = host;
    this.source = {
      connectionId: id,
      signal: this.abort.signal,
      remote: `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`,
      closeAfterResponse: () => {
        this.ending = true;
      },
    };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    socket.on("drain", () => this.updateReading());
    // Resets and the like end the connection; "close" does the cleanup.
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.abort.abort();
      clearTimeout(this.outboxTimer);
      for (const held of this.outbox.splice(0)) {
        if (held.pinned) this.host.arena.unpin(held.pinned);
      }
      this.frames = [];
      this.chunks = [];
      onClose();
    });
    this.updateReading();
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Re-reads the fault state after pause/resume. */
  pausedChanged(): void {
    if (this.closed) return;
    this.updateReading();
    if (!this.host.faults.paused) {
      this.pump();
      this.flushOutbox();
    }
  }

  private fail(reason: string): void {
    if (this.closed) return;
    this.host.log(
      `closing connection ${this.source.connectionId} from ${this.source.remote}: ${reason}`,
    );
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Uint8Array): void {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      const size = this.peekInt32();
      if (size < MIN_FRAME_BYTES || size > MAX_FRAME_BYTES) {
        this.fail(`bad request size ${size}`);
        return;
      }
      if (this.buffered < 4 + size) break;
      this.take(4);
      this.frames.push(this.take(size));
    }
    this.pump();
    this.updateReading();
  }

  private peekInt32(): number {
    const b = this.take(4, true);
    return (
      ((b[0] as number) << 24) |
      ((b[1] as number) << 16) |
      ((b[2] as number) << 8) |
      (b[3] as number)
    );
  }

  /** Removes (with `peek`, only reads) the next `n` buffered bytes; a view when possible. */
  private take(n: number, peek = false): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length - this.chunkAt >= n) {
      const out = first.subarray(this.chunkAt, this.chunkAt + n);
      if (!peek) this.consume(n);
      return out;
    }
    // The frame spans chunks: the one place a request is copied.
    const out = new Uint8Array(n);
    let filled = 0;
    let chunkIndex = 0;
    let at = this.chunkAt;
    while (filled < n) {
      const chunk = this.chunks[chunkIndex] as Uint8Array;
      const count = Math.min(n - filled, chunk.length - at);
      out.set(chunk.subarray(at, at + count), filled);
      filled += count;
      chunkIndex++;
      at = 0;
    }
    if (!peek) this.consume(n);
    return out;
  }

  private consume(n: number): void {
    this.buffered -= n;
    let left = n;
    while (left > 0) {
      const first = this.chunks[0] as Uint8Array;
      const available = first.length - this.chunkAt;
      if (available > left) {
        this.chunkAt += left;
        return;
      }
      left -= available;
      this.chunks.shift();
      this.chunkAt = 0;
    }
  }

  /** Handles queued frames in order until one goes asynchronous. */
  private pump(): void {
    while (!this.busy && !this.closed && !this.ending && !this.host.faults.paused) {
      const bytes = this.frames[this.frameHead];
      if (bytes === undefined) break;
      this.frames[this.frameHead++] = EMPTY;
      if (this.frameHead === this.frames.length) {
        this.frames = [];
        this.frameHead = 0;
      }
      let response: FramedResponse | Promise<FramedResponse>;
      try {
        response = this.host.dispatcher.dispatch(bytes, this.source);
      } catch (err) {
        this.failOn(err);
        return;
      }
      if (response instanceof Promise) {
        this.busy = true;
        response.then(
          (framed) => {
            this.busy = false;
            this.send(framed);
            this.pump();
            this.updateReading();
          },
          (err: unknown) => this.failOn(err),
        );
        return;
      }
      this.send(response);
    }
  }

  private failOn(err: unknown): void {
    if (err instanceof WireError) this.fail(`malformed request: ${err.message}`);
    else
      this.fail(
        `internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
  }

  private send(framed: FramedResponse): void {
    if (this.closed) return;
    if (framed !== null) {
      // Stored batches in the response stay pinned until the socket is done with them.
      const pinned = this.host.arena.pinSegments(framed);
      const { latencyMs, paused } = this.host.faults;
      if (latencyMs === 0 && !paused && this.outbox.length === 0) this.write(framed, pinned);
      else {
        this.outbox.push({ readyAt: Date.now() + latencyMs, segments: framed, pinned });
        this.flushOutbox();
      }
    }
    if (this.ending) this.endWhenFlushed();
  }

  /** Ends the connection once held responses are written: the client reads them before EOF. */
  private endWhenFlushed(): void {
    if (this.closed || this.outbox.length > 0) return;
    this.closed = true;
    this.socket.end(() => this.socket.destroy());
  }

  /**
   * Writes a response's segments in order: runs of small ones corked together (one vectored
   * write on Node; Bun's node:net joins them into one buffer first), large ones alone.
   */
  private write(segments: Uint8Array[], pinned: ArenaChunk[] | undefined): void {
    // Writes complete in order: the last one's callback (also called when the write fails)
    // says the socket no longer needs any of the response's bytes.
    const done = pinned && (() => this.host.arena.unpin(pinned));
    let runStart = 0;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i] as Uint8Array;
      if (segment.length < LARGE_SEGMENT_BYTES) continue;
      this.writeRun(segments, runStart, i, undefined);
      this.socket.write(segment, i === segments.length - 1 ? done : undefined);
      runStart = i + 1;
    }
    this.writeRun(segments, runStart, segments.length, done);
  }

  /** Writes `segments[from..to)`, corked together when there are several. */
  private writeRun(
    segments: Uint8Array[],
    from: number,
    to: number,
    done: (() => void) | undefined,
  ): void {
    if (to - from < 2) {
      if (to > from) this.socket.write(segments[from] as Uint8Array, done);
      return;
    }
    this.socket.cork();
    for (let i = from; i < to; i++) {
      this.socket.write(segments[i] as Uint8Array, i === to - 1 ? done : undefined);
    }
    this.socket.uncork();
  }

  /** Writes held responses that are due, in order; schedules the next one. */
  private flushOutbox(): void {
    if (this.closed || this.host.faults.paused) return;
    const now = Date.now();
    for (;;) {
      const next = this.outbox[0];
      if (next === undefined) {
        if (this.ending) this.endWhenFlushed();
        return;
      }
      if (next.readyAt > now) break;
      this.outbox.shift();
      this.write(next.segments, next.pinned);
    }
    clearTimeout(this.outboxTimer);
    const wait = (this.outbox[0] as DelayedResponse).readyAt - now;
    this.outboxTimer = setTimeout(() => this.flushOutbox(), wait);
  }

  /** Reads from the socket only while not paused and not too far behind. */
  private updateReading(): void {
    if (this.closed) return;
    const shouldRead =
      !this.host.faults.paused &&
      this.frames.length - this.frameHead < MAX_QUEUED_FRAMES &&
      this.socket.writableLength < MAX_PENDING_WRITE_BYTES;
    if (shouldRead) {
      if (this.socket.isPaused()) this.socket.resume();
    } else if (!this.socket.isPaused()) {
      this.socket.pause();
    }
  }
}

const EMPTY = new Uint8Array(0);
