/**
 * Decoders of everything that decides who may call: `guards` entries (Zilla's `jwt` and
 * `x509` guards), the http server's `options.authorization` (where a call carries its token),
 * the tls server's `options.authorization` (the x509 guard that reads client certificates),
 * a route's `guarded` roles, and the `${guarded['<guard>'].identity}` expressions routes use.
 */
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  type Mapping,
  namePattern,
  type Ref,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readString,
  readStringList,
  report,
} from "./decode.ts";
import type {
  GuardConfig,
  HttpCredentials,
  JwkConfig,
  JwtGuardConfig,
  X509GuardConfig,
} from "./types.ts";

/** A decoded `guards` entry; `config` is absent when it had problems (reported). */
export interface GuardModel {
  name: string;
  path: string;
  type?: "jwt" | "x509";
  config?: GuardConfig;
}

/** A route's `guarded` entry: the guard and the roles the caller needs from it. */
export interface GuardedRef extends Ref {
  roles: string[];
}

/** Signature algorithms a jwt guard accepts, by key type (no `none`, no shared secrets). */
export const jwtAlgorithmsByKeyType: Readonly<Record<string, readonly string[]>> = {
  RSA: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
  EC: ["ES256", "ES384", "ES512"],
  OKP: ["EdDSA", "Ed25519"],
};
const ecCurves = ["P-256", "P-384", "P-521"];
const privateJwkMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** A `guards` entry: a jwt or x509 guard. */
export function decodeGuard(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): GuardModel {
  const model: GuardModel = { name, path };
  const m = readMapping(ctx, value, path, {
    keys: ["type", "options"],
    required: ["type"],
    unsupported: { kind: 'a guard takes no "kind"; remove it' },
    hints: { type: "add type: jwt (or type: x509 for TLS client certificates)" },
  });
  if (!m || !has(m, "type")) return model;
  const typePath = childPath(path, "type");
  const type = readString(ctx, m.type, typePath);
  if (type === undefined) return model;
  const optionsPath = childPath(path, "options");
  if (type === "jwt") {
    model.type = "jwt";
    if (!has(m, "options")) {
      report(
        ctx,
        optionsPath,
        'required key "options" is missing; add the jwt options (issuer, audience, keys)',
      );
      return model;
    }
    const config = decodeJwtOptions(ctx, name, m.options, optionsPath);
    if (config) model.config = config;
    return model;
  }
  if (type === "x509") {
    model.type = "x509";
    const config = decodeX509Options(ctx, name, has(m, "options") ? m.options : {}, optionsPath);
    if (config) model.config = config;
    return model;
  }
  report(ctx, typePath, `guard type "${type}" is not supported; use type: jwt or type: x509`);
  return model;
}

function decodeJwtOptions(
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

function decodeX509Options(
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

/** The http server's `options.authorization`: one guard and where calls carry the token. */
export function decodeHttpAuthorization(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): { guard: Ref; credentials: HttpCredentials } | undefined {
  const entry = singleGuardEntry(ctx, value, path);
  if (!entry) return undefined;
  const [guard, v, p] = entry;
  const m = readMapping(ctx, v, p, {
    keys: ["credentials"],
    required: ["credentials"],
    hints: {
      credentials: "add credentials: { headers: { authorization: Bearer {credentials} } }",
    },
  });
  if (!m || !has(m, "credentials")) return undefined;
  const cp = childPath(p, "credentials");
  const c = readMapping(ctx, m.credentials, cp, { keys: ["headers", "query", "cookies"] });
  if (!c) return undefined;
  const credentials: HttpCredentials = {};
  let ok = true;
  for (const key of ["headers", "query", "cookies"] as const) {
    if (!has(c, key)) continue;
    const patterns = decodeCredentialPatterns(ctx, c[key], childPath(cp, key), key);
    if (patterns) credentials[key] = patterns;
    else ok = false;
  }
  if (ok && Object.keys(credentials).length === 0) {
    report(
      ctx,
      cp,
      "names no place for the token; add headers (e.g. authorization: Bearer {credentials}), query or cookies",
    );
    return undefined;
  }
  return ok ? { guard: { name: guard, path: p }, credentials } : undefined;
}

function decodeCredentialPatterns(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "headers" | "query" | "cookies",
): Record<string, string> | undefined {
  if (!isMapping(value) || Object.keys(value).length === 0) {
    return report(
      ctx,
      path,
      `must be a mapping of ${kind === "headers" ? "header" : kind === "query" ? "query parameter" : "cookie"} names to patterns with {credentials}, found ${describeValue(value)}`,
    );
  }
  const out: Record<string, string> = {};
  let ok = true;
  for (const [name, pattern] of Object.entries(value)) {
    const p = childPath(path, name);
    const s = readString(ctx, pattern, p);
    if (s === undefined) {
      ok = false;
      continue;
    }
    if (s.includes("{username}") || s.includes("{password}")) {
      report(
        ctx,
        p,
        "Basic credentials ({username}, {password}) need a guard that checks passwords; a jwt guard takes a token: write the pattern with {credentials}",
      );
      ok = false;
    } else if (s.split("{credentials}").length !== 2) {
      report(ctx, p, `"${s}" must contain {credentials} once, e.g. "Bearer {credentials}"`);
      ok = false;
    } else out[kind === "headers" ? name.toLowerCase() : name] = s;
  }
  return ok ? out : undefined;
}

/** The tls server's `options.authorization`: the x509 guard that reads client certificates. */
export function decodeTlsAuthorization(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): Ref | undefined {
  const entry = singleGuardEntry(ctx, value, path);
  if (!entry) return undefined;
  const [guard, v, p] = entry;
  const m = readMapping(ctx, v ?? {}, p, { keys: ["credentials"] });
  if (!m) return undefined;
  if (has(m, "credentials")) {
    const cp = childPath(p, "credentials");
    const c = readMapping(ctx, m.credentials, cp, { keys: ["certificates"] });
    if (c && has(c, "certificates") && c.certificates !== "pem") {
      report(ctx, childPath(cp, "certificates"), "must be pem (the only format)");
      return undefined;
    }
  }
  return { name: guard, path: p };
}

function singleGuardEntry(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): [string, unknown, string] | undefined {
  if (!isMapping(value)) {
    return report(
      ctx,
      path,
      `must be a mapping with one guard name, found ${describeValue(value)}`,
    );
  }
  const entries = Object.entries(value);
  if (entries.length !== 1) {
    return report(
      ctx,
      path,
      entries.length === 0
        ? "names no guard; write <guard>: { credentials: ... }"
        : `names ${entries.length} guards (${entries.map(([k]) => k).join(", ")}); a binding authorizes with one guard`,
    );
  }
  const [[guard, v]] = entries as [[string, unknown]];
  return [guard, v, childPath(path, guard)];
}

/** A route's `guarded`: guard name → the roles the caller needs. */
export function decodeGuarded(ctx: DecodeContext, value: unknown, path: string): GuardedRef[] {
  if (!isMapping(value)) {
    report(ctx, path, `must be a mapping of guard names to roles, found ${describeValue(value)}`);
    return [];
  }
  const out: GuardedRef[] = [];
  for (const [guard, roles] of Object.entries(value as Mapping)) {
    const p = childPath(path, guard);
    const list = roles === null ? [] : readStringList(ctx, roles, p);
    if (list) out.push({ name: guard, path: p, roles: list });
  }
  return out;
}

/** `${guarded['<guard>'].identity}` or `${guarded['<guard>'].attributes.<name>}`. */
const expressionPattern =
  /\$\{guarded\['([a-zA-Z][a-zA-Z0-9._-]*)'\]\.(identity|attributes\.[a-zA-Z][a-zA-Z0-9._:-]*)\}/g;

/** The guards a value's `${guarded[...]}` expressions name; reports malformed ones. */
export function guardsOfExpressions(ctx: DecodeContext, value: string, path: string): string[] {
  const names: string[] = [];
  for (const match of value.matchAll(expressionPattern)) names.push(match[1] as string);
  const rest = value.replace(expressionPattern, "");
  if (rest.includes("${guarded")) {
    report(
      ctx,
      path,
      `"${value}" has a guarded expression this gateway cannot read; write \${guarded['<guard>'].identity} or \${guarded['<guard>'].attributes.<name>}`,
    );
  }
  return names;
}
