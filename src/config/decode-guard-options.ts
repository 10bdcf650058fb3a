/**
 * Decoders of a guard's `options`, per guard type: Zilla's `jwt` guard (issuer, audience,
 * inline JWKs or a JWKS URL, roles, identity) and `x509` guard (which certificate fields
 * name the caller and grant roles). Where guards apply is decoded in decode-guards.ts.
 */
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  namePattern,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readString,
  report,
} from "./decode.ts";
import type { JwkConfig, JwtGuardConfig, X509GuardConfig } from "./types.ts";

/** Signature algorithms a jwt guard accepts, by key type (no `none`, no shared secrets). */
export const jwtAlgorithmsByKeyType: Readonly<Record<string, readonly string[]>> = {
  RSA: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
  EC: ["ES256", "ES384", "ES512"],
  OKP: ["EdDSA", "Ed25519"],
};
const ecCurves = ["P-256", "P-384", "P-521"];
const privateJwkMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** A jwt guard's `options`: issuer, audience, keys (inline JWKs or a JWKS URL), roles and identity. */
export function decodeJwtOptions(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): JwtGuardConfig | undefined {
  const o = readMapping(ctx, value, path, {
    keys: ["issuer", "audience", "roles", "keys", "challenge", "identity", "attributes"],
    required: ["issuer", "audience"],
    hints: {
      issuer: "add the issuer (the iss claim tokens must carry); without it no token is accepted",
      audience:
        "add the audience (a value the aud claim of tokens must hold); without it no token is accepted",
    },
  });
  if (!o) return undefined;
  let ok = true;
  const text = (key: string): string | undefined => {
    if (!has(o, key)) return undefined;
    const s = readName(ctx, o[key], childPath(path, key));
    if (s === undefined) ok = false;
    return s;
  };
  const issuer = text("issuer");
  const audience = text("audience");
  const roles = text("roles") ?? "scope";
  const identity = text("identity") ?? "sub";
  const config: JwtGuardConfig = {
    type: "jwt",
    name,
    issuer: issuer ?? "",
    audience: audience ?? "",
    roles,
    identity,
    attributes: {},
  };
  if (has(o, "challenge")) {
    const seconds = readInteger(ctx, o.challenge, childPath(path, "challenge"), { min: 0 });
    if (seconds === undefined) ok = false;
    else config.challengeSeconds = seconds;
  }
  if (has(o, "attributes")) {
    const attributes = decodeAttributes(ctx, o.attributes, childPath(path, "attributes"));
    if (attributes) config.attributes = attributes;
    else ok = false;
  }
  const keysPath = childPath(path, "keys");
  if (has(o, "keys")) {
    if (typeof o.keys === "string") {
      if (!/^https?:\/\/[^\s/]+/.test(o.keys)) {
        report(ctx, keysPath, "must be the http(s) URL of a JWKS, or a list of keys");
        ok = false;
      } else config.keysUrl = o.keys;
    } else {
      const keys = readListOf(ctx, o.keys, keysPath, (v, p) => decodeJwk(ctx, v, p));
      const written = Array.isArray(o.keys) ? o.keys.length : -1;
      if (!keys || keys.length !== written) ok = false;
      else if (keys.length === 0) {
        report(ctx, keysPath, "lists no key; list the issuer's public keys or remove keys");
        ok = false;
      } else config.keys = keys;
    }
  } else if (issuer !== undefined) {
    // Zilla's default: the issuer's well-known key set.
    config.keysUrl = `${issuer}${issuer.endsWith("/") ? "" : "/"}.well-known/jwks.json`;
    if (!/^https?:\/\//.test(issuer)) {
      report(
        ctx,
        keysPath,
        `no keys are listed and the issuer "${issuer}" is not an http(s) URL to fetch .well-known/jwks.json from; list the keys or give the JWKS URL`,
      );
      ok = false;
    }
  }
  if (issuer === undefined || audience === undefined) ok = false;
  return ok ? config : undefined;
}

/** One inline JWK: a public RSA, EC or OKP key with a kid (what Zilla reads). */
function decodeJwk(ctx: DecodeContext, value: unknown, path: string): JwkConfig | undefined {
  if (!isMapping(value)) {
    return report(ctx, path, `must be a JSON web key, found ${describeValue(value)}`);
  }
  let ok = true;
  for (const key of ["kty", "kid"]) {
    if (!has(value, key)) {
      report(ctx, childPath(path, key), `required key "${key}" is missing; add it`);
      ok = false;
    } else if (readName(ctx, value[key], childPath(path, key)) === undefined) ok = false;
  }
  for (const key of privateJwkMembers) {
    if (!has(value, key)) continue;
    report(
      ctx,
      childPath(path, key),
      key === "k"
        ? "a symmetric key (kty: oct) is not accepted: whoever reads this file could mint tokens; use the issuer's public RSA, EC or OKP key"
        : `"${key}" is part of a private key; list only the public key (remove "${key}")`,
    );
    ok = false;
  }
  if (!ok) return undefined;
  const kty = value.kty as string;
  const algorithms = jwtAlgorithmsByKeyType[kty];
  if (!algorithms) {
    return report(
      ctx,
      childPath(path, "kty"),
      kty === "oct"
        ? "a symmetric key (kty: oct) is not accepted: whoever reads this file could mint tokens; use the issuer's public RSA, EC or OKP key"
        : `key type "${kty}" is not supported; use RSA, EC or OKP`,
    );
  }
  const needed = kty === "RSA" ? ["n", "e"] : kty === "EC" ? ["crv", "x", "y"] : ["crv", "x"];
  for (const key of needed) {
    if (!has(value, key)) {
      report(ctx, childPath(path, key), `required key "${key}" of a ${kty} key is missing; add it`);
      ok = false;
    } else if (readName(ctx, value[key], childPath(path, key)) === undefined) ok = false;
  }
  if (ok && kty === "EC" && !ecCurves.includes(value.crv as string)) {
    report(ctx, childPath(path, "crv"), `must be one of ${ecCurves.join(", ")}`);
    ok = false;
  }
  if (ok && kty === "OKP" && value.crv !== "Ed25519") {
    report(ctx, childPath(path, "crv"), "must be Ed25519 (the OKP curve accepted for signatures)");
    ok = false;
  }
  if (has(value, "alg")) {
    const alg = readName(ctx, value.alg, childPath(path, "alg"));
    if (alg === undefined) ok = false;
    else if (!algorithms.includes(alg)) {
      report(
        ctx,
        childPath(path, "alg"),
        `"${alg}" is not an algorithm for a ${kty} key; use one of ${algorithms.join(", ")}`,
      );
      ok = false;
    }
  }
  return ok ? (value as JwkConfig) : undefined;
}

function decodeAttributes(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): Record<string, string> | undefined {
  if (!isMapping(value)) {
    return report(
      ctx,
      path,
      `must be a mapping of attribute names to claims, found ${describeValue(value)}`,
    );
  }
  const out: Record<string, string> = {};
  let ok = true;
  for (const [name, v] of Object.entries(value)) {
    const p = childPath(path, name);
    if (!namePattern.test(name)) {
      report(ctx, p, `the attribute name "${name}" must start with a letter; rename it`);
      ok = false;
      continue;
    }
    const s = readName(ctx, v, p);
    if (s === undefined) ok = false;
    else out[name] = s;
  }
  return ok ? out : undefined;
}

/** Certificate fields an x509 guard reads (the names Zilla's x509 guard uses). */
export const x509FieldPattern =
  /^(subject\.dn|issuer\.dn|subject\.[a-z][a-z0-9]*|issuer\.[a-z][a-z0-9]*|san\.(dns|email|uri|ip)|x5t\.s256)$/;
const x509FieldRule =
  "must be a certificate field: subject.dn, subject.cn (or another subject.<attribute>), issuer.dn, issuer.<attribute>, san.dns, san.email, san.uri, san.ip or x5t.s256";

/** An x509 guard's `options`: the certificate field that is the identity, attributes and roles. */
export function decodeX509Options(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): X509GuardConfig | undefined {
  const o = readMapping(ctx, value, path, { keys: ["identity", "attributes", "roles"] });
  if (!o) return undefined;
  let ok = true;
  const field = (v: unknown, p: string): string | undefined => {
    const s = readName(ctx, v, p);
    if (s === undefined) return undefined;
    if (!x509FieldPattern.test(s)) return report(ctx, p, `"${s}" ${x509FieldRule}`);
    return s;
  };
  const config: X509GuardConfig = {
    type: "x509",
    name,
    identity: "subject.dn",
    attributes: {},
    roles: {},
  };
  if (has(o, "identity")) {
    const identity = field(o.identity, childPath(path, "identity"));
    if (identity === undefined) ok = false;
    else config.identity = identity;
  }
  if (has(o, "attributes")) {
    const ap = childPath(path, "attributes");
    const attributes = decodeAttributes(ctx, o.attributes, ap);
    if (!attributes) ok = false;
    else {
      for (const [k, v] of Object.entries(attributes)) {
        if (field(v, childPath(ap, k)) === undefined) ok = false;
      }
      config.attributes = attributes;
    }
  }
  if (has(o, "roles")) {
    const rp = childPath(path, "roles");
    if (!isMapping(o.roles)) {
      report(
        ctx,
        rp,
        `must be a mapping of role names to matches, found ${describeValue(o.roles)}`,
      );
      return undefined;
    }
    for (const [role, list] of Object.entries(o.roles)) {
      const p = childPath(rp, role);
      const matches = readListOf(ctx, list, p, (v, mp) => {
        if (!isMapping(v) || Object.keys(v).length === 0) {
          return report(
            ctx,
            mp,
            "must be a mapping of certificate fields to patterns, e.g. { issuer.cn: Partner CA }",
          );
        }
        const match: Record<string, string> = {};
        for (const [f, glob] of Object.entries(v)) {
          if (field(f, childPath(mp, f)) === undefined) return undefined;
          const g = readString(ctx, glob, childPath(mp, f));
          if (g === undefined) return undefined;
          match[f] = g;
        }
        return match;
      });
      if (!matches || matches.length === 0 || matches.length !== (list as unknown[]).length) {
        if (matches?.length === 0) report(ctx, p, "lists no match; add at least one");
        ok = false;
      } else config.roles[role] = matches;
    }
  }
  return ok ? config : undefined;
}
