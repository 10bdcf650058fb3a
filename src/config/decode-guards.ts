/**
 * Decoders of everything that decides who may call: `guards` entries (Zilla's `jwt` and
 * `x509` guards), the http server's `options.authorization` (where a call carries its token),
 * the tls server's `options.authorization` (the x509 guard that reads client certificates),
 * a route's `guarded` roles, and the `${guarded['<guard>'].identity}` expressions routes use.
 * Each guard type's own `options` are decoded in decode-guard-options.ts.
 */
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  type Mapping,
  type Ref,
  readMapping,
  readString,
  readStringList,
  report,
} from "./decode.ts";
import { decodeJwtOptions, decodeX509Options } from "./decode-guard-options.ts";
import type { GuardConfig, HttpCredentials } from "./types.ts";

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
