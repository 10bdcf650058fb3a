/**
 * Cross-origin resource sharing for the front door, per the http binding's `access-control`
 * options (Zilla's policy `same-origin` | `cross-origin` with allow/expose/max-age/credentials),
 * so browsers can make gRPC-Web and Connect calls.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { AccessControl } from "../config/types.ts";

/** What to do with a request, before it reaches the RPC handlers. */
export type CorsDecision =
  /** Not a cross-origin request, or allowed: continue, adding these response headers. */
  | { kind: "continue"; headers: OutgoingHttpHeaders }
  /** A preflight: answer now with this status and headers. */
  | { kind: "preflight"; status: number; headers: OutgoingHttpHeaders }
  /** A cross-origin request the policy refuses. */
  | { kind: "refuse"; status: 403; reason: string };

const defaultAllowMethods = ["POST", "GET", "OPTIONS"];

/** Decides how the CORS policy treats a request (`method` upper-case, headers lower-case names). */
export function corsDecision(
  policy: AccessControl | undefined,
  method: string,
  headers: IncomingHttpHeaders,
  authority: string | undefined,
): CorsDecision {
  const origin = single(headers.origin);
  if (origin === undefined || isSameOrigin(origin, authority))
    return { kind: "continue", headers: {} };
  if (!policy || policy.policy === "same-origin") {
    return {
      kind: "refuse",
      status: 403,
      reason: `cross-origin request from ${origin} refused (same-origin policy)`,
    };
  }
  const allow = policy.allow ?? {};
  const origins = allow.origins;
  if (origins && !origins.includes(origin) && !origins.includes("*")) {
    return { kind: "refuse", status: 403, reason: `origin ${origin} is not allowed` };
  }
  const credentials = allow.credentials === true;
  // With credentials, "*" is not allowed by browsers, so the origin is echoed back.
  const allowOrigin = origins && !credentials && origins.includes("*") ? "*" : origin;
  const base: OutgoingHttpHeaders = { "access-control-allow-origin": allowOrigin, vary: "Origin" };
  if (credentials) base["access-control-allow-credentials"] = "true";

  const requestedMethod = single(headers["access-control-request-method"]);
  if (method === "OPTIONS" && requestedMethod !== undefined) {
    const methods = allow.methods ?? defaultAllowMethods;
    if (!methods.includes(requestedMethod.toUpperCase()) && !methods.includes("*")) {
      return { kind: "refuse", status: 403, reason: `method ${requestedMethod} is not allowed` };
    }
    const requestedHeaders = single(headers["access-control-request-headers"]);
    const out: OutgoingHttpHeaders = {
      ...base,
      "access-control-allow-methods": (allow.methods ?? defaultAllowMethods).join(", "),
    };
    if (allow.headers) out["access-control-allow-headers"] = allow.headers.join(", ");
    else if (requestedHeaders) out["access-control-allow-headers"] = requestedHeaders;
    if (policy.maxAgeSeconds !== undefined)
      out["access-control-max-age"] = String(policy.maxAgeSeconds);
    return { kind: "preflight", status: 204, headers: out };
  }
  if (policy.expose?.headers)
    base["access-control-expose-headers"] = policy.expose.headers.join(", ");
  return { kind: "continue", headers: base };
}

/** The header names to expose when the policy lists none: every response header the call sends. */
export function exposeAll(responseHeaderNames: Iterable<string>): string {
  const names = new Set<string>();
  for (const name of responseHeaderNames) {
    const n = name.toLowerCase();
    if (!n.startsWith(":") && !n.startsWith("access-control-")) names.add(n);
  }
  return [...names].join(", ");
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isSameOrigin(origin: string, authority: string | undefined): boolean {
  if (!authority) return false;
  try {
    return new URL(origin).host === authority;
  } catch {
    return false;
  }
}
