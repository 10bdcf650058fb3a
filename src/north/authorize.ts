/**
 * Who may call (docs/guards.md): per listener, a gate that reads the call's credentials (the
 * http server's `authorization`, the tls server's client certificate), asks the guards for
 * sessions, picks the first route whose `when` matches and whose `guarded` roles the caller
 * has (falling through to lower-privilege routes, as Zilla does), resolves the route's
 * `${guarded[...]}` expressions, and watches the credentials' expiry while the call runs.
 * Listeners with nothing to check get no gate, and their calls take no extra step.
 */
import type { X509Certificate } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  FetchWith,
  GrpcKafkaRoute,
  MethodGuard,
  NorthConfig,
  NorthListener,
  ProduceWith,
  RouteGuard,
} from "../config/types.ts";
import type { GuardSession, GuardVerdict } from "../guard/guard-session.ts";
import { hasRoles } from "../guard/guard-session.ts";
import type { GuardSet } from "../guard/guard-set.ts";
import { resolveGuardedWith } from "../guard/guarded-expression.ts";
import { methodMatches } from "../service-registry.ts";
import {
  type CredentialReader,
  type CredentialSource,
  createCredentialReader,
} from "./credentials.ts";
import { type MetadataLookup, whenMatches } from "./route-match.ts";

/** The connection a call came on. */
export interface ConnectionInfo {
  /** Sessions are shared per connection (HTTP/2 session or socket): its identity as a key. */
  readonly key: object;
  /** The client certificate the TLS handshake verified, if any. */
  peerCertificate(): X509Certificate | undefined;
}

/** A call as the gate sees it: credentials, metadata for route matching, and its method. */
export interface GateRequest extends CredentialSource, MetadataLookup {
  /** "pkg.Service/Method". */
  readonly method: string;
}

/** A call the gate let through, with what it may write. */
export interface Admitted {
  readonly ok: true;
  readonly route: GrpcKafkaRoute;
  /** The route's `with`, its `${guarded[...]}` expressions resolved. */
  readonly with: ProduceWith | FetchWith;
  /** Identities of the route's guards, in its `guarded` order (they scope the correlation id). */
  readonly identities: ReadonlyArray<readonly [guard: string, identity: string]>;
  /** Ends the call (UNAUTHENTICATED) when the credentials expire; returns the cancel. */
  watch(end: (code: Code, message: string) => void): () => void;
}

export type Admission =
  | Admitted
  | { readonly ok: false; readonly error: ConnectError }
  /** No route's `when` matches: the config's fault, reported as before (INTERNAL). */
  | { readonly ok: false; readonly error: undefined };

/** A listener's gate. */
export interface CallGate {
  admit(connection: ConnectionInfo, request: GateRequest): Promise<Admission>;
  /** Reads fresh credentials without a call (Zilla's challenge response); extends sessions. */
  reauthorize(connection: ConnectionInfo, request: CredentialSource): Promise<void>;
  /** Request metadata to write: without the entries that carried the token. */
  metadataOf(
    metadata: ReadonlyArray<readonly [string, string]>,
  ): ReadonlyArray<readonly [string, string]>;
}

/** The gates of a north config's listeners, in listener order (undefined: nothing to check). */
export function createCallGates(
  config: NorthConfig,
  guards: GuardSet | undefined,
): Array<CallGate | undefined> {
  const guarded =
    config.routes.some((r) => r.guarded?.length) ||
    (config.methodGuards ?? []).some((m) => m.guarded.length > 0);
  return config.listeners.map((listener) =>
    guarded || listener.authorization || listener.tls?.authorization
      ? createCallGate(config, listener, guards)
      : undefined,
  );
}

interface Authorization {
  /** Sessions by guard, each shared with the connection's other calls of the same caller. */
  sessions: Map<string, SharedSession>;
  /** Why a guard gave no session, by guard. */
  refusals: Map<string, string>;
}

function createCallGate(
  config: NorthConfig,
  listener: NorthListener,
  guards: GuardSet | undefined,
): CallGate {
  const http = listener.authorization;
  const reader: CredentialReader | undefined = http
    ? createCredentialReader(http.credentials)
    : undefined;
  const tlsGuard = listener.tls?.authorization?.guard;
  const certificateVerdicts = new WeakMap<object, GuardVerdict>();

  async function authorize(
    connection: ConnectionInfo,
    request: CredentialSource,
  ): Promise<Authorization> {
    const sessions = new Map<string, SharedSession>();
    const refusals = new Map<string, string>();
    const take = (name: string, verdict: GuardVerdict) => {
      if (verdict.ok) sessions.set(name, shareSession(connection.key, verdict.session));
      else refusals.set(name, verdict.reason);
    };
    if (http && reader) {
      const guard = guards?.jwt(http.guard);
      const token = reader.read(request);
      if (!guard) refusals.set(http.guard, `guard "${http.guard}" is not running`);
      else if (token === undefined) {
        refusals.set(http.guard, `missing credentials: send ${reader.expected}`);
      } else take(http.guard, await guard.verify(token));
    }
    if (tlsGuard) {
      // The certificate is the connection's: read once per connection.
      let verdict = certificateVerdicts.get(connection.key);
      if (!verdict) {
        const guard = guards?.x509(tlsGuard);
        verdict = guard
          ? guard.verify(connection.peerCertificate())
          : { ok: false, reason: `guard "${tlsGuard}" is not running` };
        certificateVerdicts.set(connection.key, verdict);
      }
      take(tlsGuard, verdict);
    }
    return { sessions, refusals };
  }

  return {
    async admit(connection, request) {
      const auth = await authorize(connection, request);
      const refused = checkMethodGuards(config.methodGuards, request.method, auth);
      if (refused) return { ok: false, error: refused };
      const denials: ConnectError[] = [];
      for (const route of config.routes) {
        if (
          route.when.length > 0 &&
          !route.when.some((w) => whenMatches(w, request.method, request))
        )
          continue;
        const denial = guardDenial(route.guarded, auth);
        if (!denial) return admitted(route, auth, guards);
        denials.push(denial);
      }
      return { ok: false, error: reportedDenial(denials) };
    },
    async reauthorize(connection, request) {
      await authorize(connection, request);
    },
    metadataOf: (metadata) => (reader ? reader.withoutCredentials(metadata) : metadata),
  };
}

/** The grpc server's guarded routes: some route for the method must let the caller through. */
function checkMethodGuards(
  methodGuards: readonly MethodGuard[] | undefined,
  method: string,
  auth: Authorization,
): ConnectError | undefined {
  if (!methodGuards) return undefined;
  const denials: ConnectError[] = [];
  for (const m of methodGuards) {
    if (m.method !== undefined && !methodMatches(m.method, method)) continue;
    const denial = guardDenial(m.guarded, auth);
    if (!denial) return undefined;
    denials.push(denial);
  }
  return reportedDenial(denials);
}

/**
 * What a caller refused by every candidate route hears: invalid credentials first (new ones
 * may help), else the last, least privileged route's missing roles.
 */
function reportedDenial(denials: readonly ConnectError[]): ConnectError | undefined {
  return denials.find((d) => d.code === Code.Unauthenticated) ?? denials[denials.length - 1];
}

/** Why the caller may not take a route with these guards; undefined when it may. */
function guardDenial(
  guarded: readonly RouteGuard[] | undefined,
  auth: Authorization,
): ConnectError | undefined {
  for (const { guard, roles } of guarded ?? []) {
    const shared = auth.sessions.get(guard);
    if (!shared) {
      const why = auth.refusals.get(guard) ?? "this port takes no credentials for it";
      // UNAUTHENTICATED: the caller has no valid credentials; it may fetch new ones and retry.
      return new ConnectError(`unauthenticated (guard ${guard}): ${why}`, Code.Unauthenticated);
    }
    const session = shared.session;
    if (session.identity === undefined) {
      return new ConnectError(
        `unauthenticated (guard ${guard}): the credentials name no caller`,
        Code.Unauthenticated,
      );
    }
    if (!hasRoles(session, roles)) {
      const missing = roles.filter((r) => !session.roles.includes(r));
      // PERMISSION_DENIED: the caller is known; new credentials of the same caller will not help.
      return new ConnectError(
        `permission denied (guard ${guard}): the caller lacks role${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`,
        Code.PermissionDenied,
      );
    }
  }
  return undefined;
}

function admitted(
  route: GrpcKafkaRoute,
  auth: Authorization,
  guards: GuardSet | undefined,
): Admitted {
  const sessions = new Map<string, GuardSession>();
  for (const [name, shared] of auth.sessions) sessions.set(name, shared.session);
  const routeSessions = (route.guarded ?? []).flatMap(({ guard }) => {
    const shared = auth.sessions.get(guard);
    return shared ? [{ guard, shared }] : [];
  });
  return {
    ok: true,
    route,
    with: resolveGuardedWith(route.with, sessions),
    identities: routeSessions.map(({ guard, shared }) => [guard, shared.session.identity ?? ""]),
    watch: (end) =>
      watchExpiry(
        routeSessions.map(({ guard, shared }) => ({
          guard,
          shared,
          challengeSeconds: guards?.jwt(guard)?.challengeSeconds,
        })),
        end,
      ),
  };
}

// --- sessions shared per connection ---------------------------------------------------------

/**
 * A caller's session on one connection. Like Zilla's, it is shared by the connection's calls
 * of the same caller, and fresher credentials of that caller (with at least its roles) on the
 * connection move its expiry later: a long stream stays open while the client keeps sending
 * fresh tokens on other calls of the same connection.
 */
interface SharedSession {
  session: GuardSession;
  expiresAtMs: number | undefined;
}

const sessionsByConnection = new WeakMap<object, Map<string, SharedSession>>();

function shareSession(connection: object, session: GuardSession): SharedSession {
  if (session.identity === undefined) return { session, expiresAtMs: session.expiresAtMs };
  let shared = sessionsByConnection.get(connection);
  if (!shared) {
    shared = new Map();
    sessionsByConnection.set(connection, shared);
  }
  const key = `${session.guard}\n${session.identity}`;
  const existing = shared.get(key);
  if (existing?.session.roles.every((r) => session.roles.includes(r))) {
    existing.session = session;
    existing.expiresAtMs =
      existing.expiresAtMs === undefined || session.expiresAtMs === undefined
        ? undefined
        : Math.max(existing.expiresAtMs, session.expiresAtMs);
    return existing;
  }
  const fresh: SharedSession = { session, expiresAtMs: session.expiresAtMs };
  shared.set(key, fresh);
  return fresh;
}

// --- expiry while a call runs ----------------------------------------------------------------

interface Watched {
  guard: string;
  shared: SharedSession;
  challengeSeconds: number | undefined;
}

/** The longest delay setTimeout takes as is. */
const maxTimerMs = 2_147_483_647;

/**
 * Ends the call when a session it depends on expires, or, with the guard's `challenge`, that
 * many seconds before (unless fresher credentials arrived on the connection by then). A call
 * that starts inside the challenge window runs until the expiry itself.
 */
function watchExpiry(
  watched: readonly Watched[],
  end: (code: Code, message: string) => void,
): () => void {
  const startedAt = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const due = (w: Watched): { atMs: number; challenge: boolean } | undefined => {
    const expiresAt = w.shared.expiresAtMs;
    if (expiresAt === undefined) return undefined;
    if (w.challengeSeconds !== undefined) {
      const challengeAt = expiresAt - w.challengeSeconds * 1000;
      if (challengeAt > startedAt) return { atMs: challengeAt, challenge: true };
    }
    return { atMs: expiresAt, challenge: false };
  };
  const check = () => {
    timer = undefined;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const w of watched) {
      const d = due(w);
      if (!d) continue;
      if (d.atMs <= now) {
        const expiresAt = new Date(w.shared.expiresAtMs ?? now).toISOString();
        end(
          Code.Unauthenticated,
          d.challenge
            ? `unauthenticated (guard ${w.guard}): credentials expire at ${expiresAt}; call again with fresh ones (challenge ${w.challengeSeconds} s)`
            : `unauthenticated (guard ${w.guard}): credentials expired during the call`,
        );
        return;
      }
      next = Math.min(next, d.atMs);
    }
    if (Number.isFinite(next)) timer = setTimeout(check, Math.min(next - now, maxTimerMs));
  };
  check();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}
