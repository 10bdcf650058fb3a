/**
 * West's connections to its upstreams: one multiplexed HTTP/2 session per upstream (scheme,
 * authority and TLS settings), opened on first use and replaced when it closes, fails or
 * receives GOAWAY. Calls over it are made by upstream-client.ts.
 */
import * as http2 from "node:http2";
import type { KafkaGrpcRoute } from "../config/types.ts";
import { http2WindowSettings, widenConnectionWindow } from "../runtime/http2-windows.ts";

export type UpstreamTarget = KafkaGrpcRoute["with"];

/** One upstream's HTTP/2 connection, (re)opened on demand. */
export interface UpstreamTransport {
  /** `scheme://authority` of the upstream. */
  readonly baseUrl: string;
  /** `host:port` of the upstream, as the route names it. */
  readonly authority: string;
  /** Told of each attempt that could not reach the upstream, and of each that did. */
  readonly health?: UpstreamHealth | undefined;
  /** The open session, or a new one when there is none or it is going away. */
  session(): http2.ClientHttp2Session;
}

/** What an upstream's reachability is reported to (west's log lines and metrics). */
export interface UpstreamHealth {
  /** An attempt could not reach the upstream; `reason` is the connection error. */
  unreachable(reason: string): void;
  /** An attempt reached the upstream and got an answer. */
  reached(): void;
}

/** Transports by upstream, each over one multiplexed HTTP/2 connection. */
export interface UpstreamPool {
  transportFor(target: UpstreamTarget): UpstreamTransport;
  /** Closes every connection (open calls fail). */
  close(): void;
}

/**
 * A pool that opens a connection per distinct upstream on first use; `healthFor` gives each
 * upstream (by authority) what its reachability is reported to.
 */
export function createUpstreamPool(
  healthFor?: (authority: string) => UpstreamHealth,
): UpstreamPool {
  const entries = new Map<string, SessionHolder>();
  // Every call asks for its route's transport: the answer is kept per route target.
  let byTarget = new WeakMap<UpstreamTarget, SessionHolder>();
  return {
    transportFor(target) {
      const known = byTarget.get(target);
      if (known) return known;
      const id = JSON.stringify([target.scheme, target.authority, target.tls ?? null]);
      let entry = entries.get(id);
      if (!entry) {
        entry = new SessionHolder(
          target.authority,
          `${target.scheme}://${target.authority}`,
          tlsSessionOptions(target),
          healthFor?.(target.authority),
        );
        entries.set(id, entry);
      }
      byTarget.set(target, entry);
      return entry;
    },
    close() {
      for (const entry of entries.values()) entry.close();
      entries.clear();
      byTarget = new WeakMap();
    },
  };
}

/** Keeps one session to an upstream; a closed, failed or draining session is replaced. */
class SessionHolder implements UpstreamTransport {
  readonly authority: string;
  readonly baseUrl: string;
  readonly health: UpstreamHealth | undefined;
  private readonly options: http2.SecureClientSessionOptions | undefined;
  private current: http2.ClientHttp2Session | undefined;

  constructor(
    authority: string,
    baseUrl: string,
    options: http2.SecureClientSessionOptions | undefined,
    health: UpstreamHealth | undefined,
  ) {
    this.authority = authority;
    this.baseUrl = baseUrl;
    this.options = options;
    this.health = health;
  }

  session(): http2.ClientHttp2Session {
    const open = this.current;
    if (open && !open.closed && !open.destroyed) return open;
    const session = http2.connect(this.baseUrl, {
      ...this.options,
      settings: http2WindowSettings,
    });
    session.once("connect", () => widenConnectionWindow(session));
    const forget = () => {
      if (this.current === session) this.current = undefined;
    };
    // Errors reach the calls through their streams; the session is only replaced.
    session.on("error", forget);
    session.on("close", forget);
    // After GOAWAY the upstream takes no new streams here: the next call opens a new session.
    session.on("goaway", forget);
    this.current = session;
    return session;
  }

  close(): void {
    this.current?.destroy();
    this.current = undefined;
  }
}

function tlsSessionOptions(target: UpstreamTarget): http2.SecureClientSessionOptions | undefined {
  const tls = target.tls;
  if (target.scheme !== "https" || !tls) return undefined;
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.pfx ? { pfx: Buffer.from(tls.pfx), passphrase: tls.passphrase } : {}),
    ...(tls.sni ? { servername: tls.sni } : {}),
    ALPNProtocols: tls.alpn ?? ["h2"],
    rejectUnauthorized: !tls.insecure,
  };
}
