/**
 * Zilla's `jwt` guard: verifies a compact JWS token with the issuer's public keys (inline, or
 * the issuer's JWKS fetched over HTTP and cached), checks `iss`, `aud`, `exp` and `nbf`, and
 * reads the caller's identity, roles and attributes from the claims. Signatures are checked by
 * `jose` (Web Crypto), the same on Node, Bun and Deno; this file only decides what to accept
 * and says why a token was refused.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWK,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { jwtAlgorithmsByKeyType } from "../config/decode-guard-options.ts";
import type { JwtGuardConfig } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import {
  attributeText,
  type Guard,
  type GuardSession,
  type GuardVerdict,
} from "./guard-session.ts";

export interface JwtGuard extends Guard {
  readonly type: "jwt";
  /** Verifies a token; never throws (keys that cannot be fetched are a refusal). */
  verify(token: string): Promise<GuardVerdict>;
  /** Fetches the JWKS now (when keys are remote), so the first call does not wait for it. */
  warm(): Promise<void>;
}

export interface JwtGuardOptions {
  logger: Logger;
  /** How long one JWKS fetch may take (default 5 s). */
  fetchTimeoutMs?: number;
  /** How long fetched keys are used before they are fetched again (default 10 min). */
  keysMaxAgeMs?: number;
  /** Least time between two fetches for a token whose kid is unknown (default 30 s). */
  unknownKidCooldownMs?: number;
  /** After a failed fetch, calls fail at once for this long before the next try (default 5 s). */
  failedFetchRetryMs?: number;
}

export const jwtGuardDefaults = {
  fetchTimeoutMs: 5_000,
  keysMaxAgeMs: 10 * 60_000,
  unknownKidCooldownMs: 30_000,
  failedFetchRetryMs: 5_000,
};

const algorithms = Object.values(jwtAlgorithmsByKeyType).flat();
/** Verified tokens kept so a stream of calls with one token verifies it once. */
const verifiedMax = 4096;

type KeyResolver = Parameters<typeof jwtVerify>[1];

/** Creates a jwt guard from its config. */
export function createJwtGuard(config: JwtGuardConfig, opts: JwtGuardOptions): JwtGuard {
  const keys = createKeyResolver(config, opts);
  const verified = new Map<string, GuardSession>();

  async function verify(token: string): Promise<GuardVerdict> {
    const known = verified.get(token);
    if (known && (known.expiresAtMs === undefined || Date.now() < known.expiresAtMs)) {
      return { ok: true, session: known };
    }
    verified.delete(token);
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return { ok: false, reason: "malformed token: not a signed JWT" };
    }
    if (kid === undefined) return { ok: false, reason: "token has no kid (key id) header" };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys.resolve, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms,
      }));
    } catch (error) {
      return { ok: false, reason: refusalReason(error, kid, keys) };
    }
    const session = sessionOf(config, payload);
    if (verified.size >= verifiedMax) verified.clear();
    verified.set(token, session);
    return { ok: true, session };
  }

  return {
    name: config.name,
    type: "jwt",
    challengeSeconds: config.challengeSeconds,
    verify,
    async warm() {
      const failure = await keys.warm();
      if (failure) {
        opts.logger.warn("jwt guard keys are not available yet; calls are refused until they are", {
          guard: config.name,
          keys: config.keysUrl,
          error: failure,
        });
      }
    },
  };
}

interface Keys {
  resolve: KeyResolver;
  /** Where the keys are fetched from (undefined: inline). */
  url: string | undefined;
  warm(): Promise<string | undefined>;
}

function createKeyResolver(config: JwtGuardConfig, opts: JwtGuardOptions): Keys {
  if (config.keys) {
    // Zilla ignores `use` and `key_ops` (its own examples write `use: enc` on signing keys).
    const jwks = config.keys.map(({ use: _use, key_ops: _ops, ...jwk }) => jwk as JWK);
    return {
      resolve: createLocalJWKSet({ keys: jwks }),
      url: undefined,
      warm: async () => undefined,
    };
  }
  const url = new URL(config.keysUrl ?? "");
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: opts.fetchTimeoutMs ?? jwtGuardDefaults.fetchTimeoutMs,
    cacheMaxAge: opts.keysMaxAgeMs ?? jwtGuardDefaults.keysMaxAgeMs,
    cooldownDuration: opts.unknownKidCooldownMs ?? jwtGuardDefaults.unknownKidCooldownMs,
  });
  const retryMs = opts.failedFetchRetryMs ?? jwtGuardDefaults.failedFetchRetryMs;
  let failedAt = Number.NEGATIVE_INFINITY;
  let failure = "";
  const note = (error: unknown) => {
    if (!isFetchFailure(error)) return;
    failedAt = Date.now();
    failure = describeFetchFailure(error);
  };
  return {
    url: url.href,
    async resolve(header, token) {
      // While the issuer is unreachable every call fails at once instead of waiting for a fetch.
      if (Date.now() - failedAt < retryMs) throw new KeysUnavailable(failure);
      try {
        return await remote(header, token);
      } catch (error) {
        note(error);
        throw error;
      }
    },
    async warm() {
      try {
        await remote.reload();
        return undefined;
      } catch (error) {
        note(error);
        return describeFetchFailure(error);
      }
    },
  };
}

class KeysUnavailable extends Error {}

/** A failure to get the key set at all (as opposed to a key set without the token's key). */
function isFetchFailure(error: unknown): boolean {
  if (error instanceof KeysUnavailable || error instanceof errors.JWKSTimeout) return true;
  if (error instanceof errors.JWKSInvalid) return true;
  if (error instanceof errors.JOSEError) {
    return /JSON Web Key Set HTTP response/.test(error.message);
  }
  // fetch() rejects with a TypeError (connection refused, DNS, TLS) on every runtime.
  return error instanceof TypeError;
}

function describeFetchFailure(error: unknown): string {
  if (error instanceof KeysUnavailable) return error.message;
  if (error instanceof errors.JWKSTimeout) return "timed out";
  const cause = (error as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return `${(error as Error).message}${detail}`;
}

/** Why a token was refused, in words a caller (and its operator) can act on. */
function refusalReason(error: unknown, kid: string, keys: Keys): string {
  if (error instanceof errors.JWTExpired) {
    return error.claim === "exp" ? "token expired" : `token refused: ${error.message}`;
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "iss") return "wrong issuer";
    if (error.claim === "aud") return "wrong audience";
    if (error.claim === "nbf") return "token not valid yet (nbf)";
    return `token refused: ${error.message}`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "bad signature";
  if (error instanceof errors.JWKSNoMatchingKey) return `unknown kid "${kid}"`;
  if (error instanceof errors.JWKSMultipleMatchingKeys) return `ambiguous kid "${kid}"`;
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return "token algorithm not accepted (RS*, PS*, ES* or EdDSA only)";
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return `malformed token: ${error.message}`;
  }
  if (isFetchFailure(error)) {
    return `keys unavailable (${keys.url}: ${describeFetchFailure(error)})`;
  }
  return `token refused: ${(error as Error).message}`;
}

/** Identity, roles and attributes from verified claims, as the guard's config names them. */
function sessionOf(config: JwtGuardConfig, payload: JWTPayload): GuardSession {
  const identity = claimAt(payload, config.identity);
  const attributes: Record<string, string> = {};
  for (const [name, path] of Object.entries(config.attributes)) {
    const value = attributeText(claimAt(payload, path));
    if (value !== undefined) attributes[name] = value;
  }
  return {
    guard: config.name,
    identity: typeof identity === "string" ? identity : undefined,
    roles: rolesOf(claimAt(payload, config.roles)),
    attributes,
    expiresAtMs: typeof payload.exp === "number" ? payload.exp * 1000 : undefined,
  };
}

/** A claim by dotted path ("realm_access.roles"). */
function claimAt(payload: JWTPayload, path: string): unknown {
  let current: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** Roles from a space-separated string (OAuth `scope`) or a list. */
function rolesOf(value: unknown): string[] {
  if (typeof value === "string") return value.split(/\s+/).filter((r) => r !== "");
  if (Array.isArray(value)) return value.filter((r): r is string => typeof r === "string");
  return [];
}
