/**
 * West's connections to its upstreams: one multiplexed HTTP/2 session per upstream (scheme,
 * authority and TLS settings), opened on first use and replaced when it closes, fails or
 * receives GOAWAY. Calls over it are made by upstream-client.ts.
 */
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import type { KafkaGrpcRoute } from "../config/types.ts";
import { ClientSession } from "../h2/client-session.ts";
import { connectionWindowBytes, streamWindowBytes } from "../runtime/http2-windows.ts";

export type UpstreamTarget = KafkaGrpcRoute["with"];

/** One upstream's HTTP/2 connection, (re)opened on demand. */
export interface UpstreamTransport {
  /** `http` or `https`. */
  readonly scheme: string;
  /** `host:port` of the upstream, as the route names it. */
  readonly authority: string;
  /** Told of each attempt that could not reach the upstream, and of each that did. */
  readonly health?: UpstreamHealth | undefined;
  /** The open session, or a new one when there is none or it is going away. */
  session(): ClientSession;
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
          target.scheme,
          target.authority,
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
  readonly scheme: string;
  readonly authority: string;
  readonly health: UpstreamHealth | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly tls: ConnectionOptions | undefined;
  private current: ClientSession | undefined;
  /** A session that failed, closed or received GOAWAY is replaced by the next call's. */
  private readonly forget = (session: ClientSession) => {
    if (this.current === session) this.current = undefined;
  };

  constructor(
    scheme: string,
    authority: string,
    tls: ConnectionOptions | undefined,
    health: UpstreamHealth | undefined,
  ) {
    this.scheme = scheme;
    this.authority = authority;
    this.health = health;
    const { host, port } = splitAuthority(authority, scheme === "https" ? 443 : 80);
    this.host = host;
    this.port = port;
    this.tls =
      scheme === "https"
        ? { ...(isIP(host) === 0 ? { servername: host } : {}), ...(tls ?? {}) }
        : undefined;
  }

  session(): ClientSession {
    const open = this.current;
    if (open && !open.goingAway && !open.destroyed) return open;
    const session = new ClientSession(
      {
        host: this.host,
        port: this.port,
        tls: this.tls,
        streamWindowBytes,
        connectionWindowBytes,
      },
      this.forget,
    );
    this.current = session;
    return session;
  }

  close(): void {
    this.current?.destroy();
    this.current = undefined;
  }
}

/** `host:port` (IPv6 in brackets) as host and port; `fallback` when the port is left out. */
export function splitAuthority(
  authority: string,
  fallback: number,
): { host: string; port: number } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority);
  if (bracket)
    return { host: bracket[1] as string, port: bracket[2] ? Number(bracket[2]) : fallback };
  const colon = authority.lastIndexOf(":");
  if (colon < 0) return { host: authority, port: fallback };
  return { host: authority.slice(0, colon), port: Number(authority.slice(colon + 1)) };
}

function tlsSessionOptions(target: UpstreamTarget): ConnectionOptions | undefined {
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
