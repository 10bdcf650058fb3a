/**
 * What keeps the front door standing against clients it does not control (docs/limits.md):
 * a cap on open connections (past it new ones are closed at once, and readiness says so),
 * a deadline for the TLS handshake and the first request, an idle timeout and PINGs for
 * HTTP/2 connections, a budget of stream resets per connection (the "rapid reset" attack),
 * and per call a stream idle timeout and a slow-reader timeout with a cap on unread reply
 * bytes. One sweep timer per north binding checks every connection, so a call costs a small
 * record and no timer of its own; times are read from a clock the sweep advances.
 */
import { readFileSync } from "node:fs";
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { EdgeLimits } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { sessionBytesWritten, sessionQueuedBytes } from "../runtime/http2-backpressure.ts";

/**
 * Why the guard ends a call: its request sat idle, its client took no reply bytes for the
 * write timeout, or its unread reply bytes passed the cap.
 */
export type ExpireReason = "idle" | "slow-reader" | "unread-cap";

/** Milliseconds, advanced by every sweep: what a watch's `touch()` reads. */
let clockMs = Date.now();

/** The reset budget's window. */
const resetWindowMs = 10_000;
/** How long a connection told to go away may take before it is cut. */
const closeGraceMs = 1_000;
/** Bytes a connection's socket must take for its client to count as reading (a DATA frame). */
const readProgressBytes = 16 * 1024;

/**
 * What a watched call writes its reply to: an HTTP/2 stream (reset with CANCEL when the call
 * is ended by the guard) or an HTTP/1.1 response (destroyed).
 */
interface ReplyTarget {
  readonly writableLength: number;
  once(event: "drain" | "finish", listener: () => void): unknown;
  close?(code: number): void;
  destroy(): unknown;
  readonly closed?: boolean;
}

/**
 * A connection's open calls, threaded through their watches in the order they opened: a
 * `Set` cost about 80 bytes a call, and north holds up to a hundred calls on each of
 * thousands of connections.
 */
export class WatchList {
  size = 0;
  private first: StreamWatch | undefined;
  private last: StreamWatch | undefined;

  add(watch: StreamWatch): void {
    if (watch.listed) return;
    watch.listed = true;
    watch.previous = this.last;
    watch.next = undefined;
    if (this.last) this.last.next = watch;
    else this.first = watch;
    this.last = watch;
    this.size++;
  }

  /** Takes `watch` out; false when it was not in. */
  delete(watch: StreamWatch): boolean {
    if (!watch.listed) return false;
    watch.listed = false;
    const { previous, next } = watch;
    if (previous) previous.next = next;
    else this.first = next;
    if (next) next.previous = previous;
    else this.last = previous;
    watch.previous = undefined;
    watch.next = undefined;
    this.size--;
    return true;
  }

  /**
   * Each watch in opening order. The current one may be taken out meanwhile; should the one
   * after it go too, the rest wait for the next sweep.
   */
  *[Symbol.iterator](): IterableIterator<StreamWatch> {
    let watch = this.first;
    while (watch) {
      const next = watch.next;
      yield watch;
      watch = watch.listed ? watch.next : next;
    }
  }
}

/**
 * The HTTP/2 connection as the guard uses it: liveness PINGs, GOAWAY, and how much of its
 * replies the client has taken. The gateway's own session (src/h2/server-session.ts) is one;
 * a runtime `node:http2` session is adapted by `guardSessionOf`.
 */
export interface GuardSession {
  readonly closed: boolean;
  readonly destroyed: boolean;
  ping(done: (error: Error | null) => void): boolean;
  goaway(code: number): void;
  close(): void;
  destroy(): void;
  /** Reply bytes held for the client beyond the streams' own write buffers. */
  queuedBytes(): number;
  /** Bytes written to the socket so far. */
  bytesWritten(): number;
}

/** A runtime `node:http2` session as the guard uses it. */
export function guardSessionOf(session: ServerHttp2Session): GuardSession {
  return {
    get closed() {
      return session.closed;
    },
    get destroyed() {
      return session.destroyed;
    },
    ping: (done) => session.ping((error) => done(error ?? null)),
    goaway: (code) => session.goaway(code),
    close: () => session.close(),
    destroy: () => session.destroy(),
    queuedBytes: () => sessionQueuedBytes(session),
    bytesWritten: () => sessionBytesWritten(session),
  };
}

/** A call that ends itself its own way when the guard says so. */
export interface ExpiringCall {
  expired(reason: ExpireReason): void;
}

/**
 * One call as the guard sees it. The protocol side reports activity (`touch`), the end of
 * the request (`requestEnded`) and writes not taken at once (`blocked`), and sets `call` to
 * end the call its own way (else its stream is reset); the guard does so when the call sat
 * idle or its client stopped reading.
 */
export class StreamWatch {
  lastActivityMs = clockMs;
  requestOpen = true;
  /** When a write was first not taken (0: not blocked). */
  blockedSinceMs = 0;
  /** Since when its unread reply bytes are over the write buffer cap (0: they are not). */
  overCapSinceMs = 0;
  /** The gateway reset the stream itself (not counted against the client's budget). */
  resetByGateway = false;
  /** Ends the call its own way; absent, the guard resets the stream. */
  call: ExpiringCall | undefined;
  readonly target: ReplyTarget;
  readonly connection: GuardedConnection;
  private onDrain: (() => void) | undefined;
  /** Its place in its connection's `WatchList`. */
  listed = false;
  previous: StreamWatch | undefined;
  next: StreamWatch | undefined;

  constructor(connection: GuardedConnection, target: ReplyTarget) {
    this.connection = connection;
    this.target = target;
  }

  /** Data went either way. */
  touch(): void {
    this.lastActivityMs = clockMs;
  }

  /** The client half-closed: the call now waits on its reply (and its deadline). */
  requestEnded(): void {
    this.requestOpen = false;
    this.lastActivityMs = clockMs;
  }

  /**
   * A write was not taken at once; `clearedBy` ('drain', or 'finish' after the stream's last
   * write) clears it. Over the write buffer cap for a second (the sweep checks), or past four
   * times the cap at once, the call ends.
   */
  blocked(clearedBy: "drain" | "finish" = "drain"): void {
    this.lastActivityMs = clockMs;
    if (this.target.writableLength > 4 * this.connection.limits.maxWriteBufferBytes) {
      this.expireNow("unread-cap");
      return;
    }
    if (this.blockedSinceMs !== 0) return;
    this.blockedSinceMs = clockMs;
    this.onDrain ??= () => {
      this.blockedSinceMs = 0;
      this.lastActivityMs = clockMs;
    };
    this.target.once(clearedBy, this.onDrain);
  }

  /** Ends the call now (once). */
  expireNow(reason: ExpireReason): void {
    if (!this.connection.watches.delete(this)) return;
    this.resetByGateway = true;
    this.connection.logger.debug("north call ended by the edge guard", {
      reason,
      remote: this.connection.remote,
    });
    if (this.call) this.call.expired(reason);
    else if (this.target.close) {
      if (!this.target.closed) this.target.close(constants.NGHTTP2_CANCEL);
    } else this.target.destroy();
    this.connection.streamClosed(this, false);
  }
}

/** One accepted connection. */
export class GuardedConnection {
  readonly limits: EdgeLimits;
  readonly logger: Logger;
  /** "address:port" of the client, for logs. */
  readonly remote: string;
  /** Open calls (HTTP/2 streams, or HTTP/1.1 requests in progress). */
  readonly watches = new WatchList();
  session: GuardSession | undefined;
  private readonly sockets: Socket[];
  private readonly acceptedAtMs = clockMs;
  private firstRequest = false;
  private idleSinceMs = clockMs;
  private nextPingAtMs = 0;
  private pingSentAtMs = 0;
  private resets = 0;
  private resetWindowStartMs = clockMs;
  /** When set, the connection was told to go and is cut at this time. */
  private cutAtMs = 0;
  /** Since when its unread replies are over the write buffer limit (0: they are not). */
  private overBufferSinceMs = 0;
  /** Since when it holds unread replies and its socket took nothing (0: it does not). */
  private stalledSinceMs = 0;
  private lastBytesWritten = 0;
  private gone = false;

  constructor(socket: Socket, limits: EdgeLimits, logger: Logger) {
    this.sockets = [socket];
    this.limits = limits;
    this.logger = logger;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
  }

  /** The socket the protocol runs on after TLS (cut together with the raw one). */
  addSocket(socket: Socket): void {
    this.sockets.push(socket);
  }

  /** HTTP/2 took the connection. */
  attachSession(session: GuardSession): void {
    this.session = session;
    this.nextPingAtMs = clockMs + this.limits.keepaliveMs;
  }

  /** A call began: an HTTP/2 stream or an HTTP/1.1 request. */
  callOpened(target: ReplyTarget): StreamWatch {
    this.firstRequest = true;
    const watch = new StreamWatch(this, target);
    this.watches.add(watch);
    return watch;
  }

  /** A call's stream closed; `abortedByClient` when the client reset it. */
  streamClosed(watch: StreamWatch, abortedByClient: boolean): void {
    this.watches.delete(watch);
    if (this.watches.size === 0) this.idleSinceMs = clockMs;
    if (!abortedByClient || watch.resetByGateway) return;
    if (clockMs - this.resetWindowStartMs >= resetWindowMs) {
      this.resetWindowStartMs = clockMs;
      this.resets = 0;
    }
    this.resets++;
    if (this.resets > this.limits.maxResets) {
      this.goAway(constants.NGHTTP2_ENHANCE_YOUR_CALM, "stream resets over budget");
    }
  }

  /** Checks the connection's deadlines at `now`. */
  check(now: number): void {
    if (this.gone) return;
    const limits = this.limits;
    if (this.cutAtMs !== 0) {
      if (now >= this.cutAtMs) this.cut("did not close after GOAWAY");
      return;
    }
    if (!this.firstRequest) {
      if (now - this.acceptedAtMs >= limits.handshakeTimeoutMs) {
        this.cut("no request within the handshake timeout");
      }
      return;
    }
    if (this.watches.size === 0 && limits.idleTimeoutMs > 0) {
      if (now - this.idleSinceMs >= limits.idleTimeoutMs) {
        this.goAway(constants.NGHTTP2_NO_ERROR, "idle");
        return;
      }
    }
    if (this.session && limits.keepaliveMs > 0) this.keepAlive(now);
    let unread = 0;
    for (const watch of this.watches) {
      if (watch.blockedSinceMs !== 0) {
        const queued = watch.target.writableLength;
        if (now - watch.blockedSinceMs >= limits.writeTimeoutMs) watch.expireNow("slow-reader");
        else if (queued <= limits.maxWriteBufferBytes) {
          watch.overCapSinceMs = 0;
          unread += queued;
        } else if (watch.overCapSinceMs === 0) {
          // A burst a reading client takes in a moment; held for a second it is not one.
          watch.overCapSinceMs = now;
          unread += queued;
        } else if (now - watch.overCapSinceMs >= Math.min(1_000, limits.writeTimeoutMs)) {
          watch.expireNow("unread-cap");
        } else unread += queued;
      } else if (
        watch.requestOpen &&
        limits.streamIdleTimeoutMs > 0 &&
        now - watch.lastActivityMs >= limits.streamIdleTimeoutMs
      ) {
        watch.expireNow("idle");
      }
    }
    if (this.session) unread += this.session.queuedBytes();
    // Over the limit for a moment is a burst a reading client takes; held for a second
    // (or the write timeout, when shorter) it is a client that does not read.
    if (unread <= limits.maxWriteBufferBytes) this.overBufferSinceMs = 0;
    else if (this.overBufferSinceMs === 0) this.overBufferSinceMs = now;
    else if (now - this.overBufferSinceMs >= Math.min(1_000, limits.writeTimeoutMs)) {
      this.cut("unread replies over the write buffer limit");
      return;
    }
    this.checkStalled(now, unread);
  }

  /**
   * Replies waiting and less than a frame's worth taken for twice the write timeout: the
   * client stopped reading. (Frames that need no window, such as trailers, PINGs and resets,
   * still leave, so a few bytes written are no sign of a reader.) Stalled streams are reset
   * at the write timeout where the runtime shows their buffers; this catches what only the
   * session shows (Bun), after the streams had their chance.
   */
  private checkStalled(now: number, unread: number): void {
    const session = this.session;
    if (!session || unread === 0) {
      this.stalledSinceMs = 0;
      return;
    }
    const written = session.bytesWritten();
    if (this.stalledSinceMs === 0 || written - this.lastBytesWritten >= readProgressBytes) {
      this.stalledSinceMs = now;
      this.lastBytesWritten = written;
    } else if (now - this.stalledSinceMs >= 2 * this.limits.writeTimeoutMs) {
      this.cut("client took less than a frame of its replies within twice the write timeout");
    }
  }

  private keepAlive(now: number): void {
    const session = this.session as GuardSession;
    if (this.pingSentAtMs !== 0) {
      if (now - this.pingSentAtMs >= this.limits.keepaliveTimeoutMs) this.cut("PING not answered");
      return;
    }
    if (now < this.nextPingAtMs || session.closed || session.destroyed) return;
    this.pingSentAtMs = now;
    try {
      session.ping((error) => {
        if (error) return;
        this.pingSentAtMs = 0;
        this.nextPingAtMs = clockMs + this.limits.keepaliveMs;
      });
    } catch {
      // A session on its way out; the socket's close removes the connection.
      this.pingSentAtMs = 0;
    }
  }

  /** Asks the client to leave (HTTP/2 GOAWAY with `code`; HTTP/1.1 is closed), cut after a grace. */
  goAway(code: number, reason: string): void {
    if (this.gone || this.cutAtMs !== 0) return;
    this.logger.debug("north connection closed by the edge guard", { reason, remote: this.remote });
    this.cutAtMs = clockMs + closeGraceMs;
    const session = this.session;
    if (!session) {
      for (const socket of this.sockets) socket.end();
      return;
    }
    try {
      session.goaway(code);
      session.close();
    } catch {
      this.cut(reason);
    }
  }

  /** Closes the connection now. */
  cut(reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.logger.debug("north connection cut by the edge guard", { reason, remote: this.remote });
    this.session?.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}

/** The connections of one north binding, and the timer that checks them. */
export interface ConnectionGuard {
  readonly limits: EdgeLimits;
  /** Connections open now. */
  readonly count: number;
  /** The cap in force (resolved from the open-file limit when configured as 0). */
  readonly maxConnections: number;
  /** A new connection, or undefined when at the cap (the socket is then closed). */
  admit(socket: Socket): GuardedConnection | undefined;
  /** Stops the timer (connections are closed by their listeners). */
  close(): void;
}

export interface ConnectionGuardOptions {
  limits: EdgeLimits;
  logger: Logger;
  /** Called when the binding reaches its connection cap (true) and when it drops below (false). */
  onCapacity?: (atCap: boolean) => void;
}

/** Creates the guard of one north binding. */
export function createConnectionGuard(options: ConnectionGuardOptions): ConnectionGuard {
  const { limits, logger } = options;
  const maxConnections = resolveMaxConnections(limits.maxConnections);
  const connections = new Set<GuardedConnection>();
  let atCap = false;
  let refused = 0;
  const setAtCap = (value: boolean) => {
    if (value === atCap) return;
    atCap = value;
    if (value) {
      logger.warn("north at its connection cap: new connections are refused", { maxConnections });
    } else {
      logger.info("north below its connection cap again", { maxConnections, refused });
      refused = 0;
    }
    options.onCapacity?.(value);
  };
  const timer = setInterval(() => {
    clockMs = Date.now();
    for (const connection of connections) connection.check(clockMs);
  }, sweepIntervalMs(limits));
  timer.unref?.();

  return {
    limits,
    maxConnections,
    get count() {
      return connections.size;
    },
    admit(socket) {
      if (connections.size >= maxConnections) {
        refused++;
        socket.destroy();
        return undefined;
      }
      clockMs = Date.now();
      const connection = new GuardedConnection(socket, limits, logger);
      connections.add(connection);
      socket.once("close", () => {
        connections.delete(connection);
        if (connections.size < maxConnections) setAtCap(false);
      });
      if (connections.size >= maxConnections) setAtCap(true);
      return connection;
    },
    close() {
      clearInterval(timer);
    },
  };
}

/** Sweeps often enough for the shortest deadline in force (a quarter of it, 10 ms to 1 s). */
function sweepIntervalMs(limits: EdgeLimits): number {
  const deadlines = [
    limits.handshakeTimeoutMs,
    limits.idleTimeoutMs,
    limits.keepaliveMs,
    limits.keepaliveTimeoutMs,
    limits.streamIdleTimeoutMs,
    limits.writeTimeoutMs,
  ].filter((ms) => ms > 0);
  return Math.min(1_000, Math.max(10, Math.floor(Math.min(...deadlines) / 4)));
}

/** Connections allowed when none is configured: 10,000, kept 1,024 below the open-file limit. */
export function resolveMaxConnections(configured: number): number {
  if (configured > 0) return configured;
  const fileLimit = openFileLimit();
  if (fileLimit === undefined) return 10_000;
  return Math.max(64, Math.min(10_000, fileLimit - 1_024));
}

/** The process's soft open-file limit (Linux /proc), or undefined where it cannot be read. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    const n = Number(soft);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The guard's record of a stream, for the listener's shared 'close' listener. */
export const watchOfStream = Symbol("edgeWatch");
export type WatchedStream = ServerHttp2Stream & { [watchOfStream]?: StreamWatch };
