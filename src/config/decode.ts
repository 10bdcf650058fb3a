/**
 * Strict readers for the parsed YAML tree: each checks one value's shape, reports a
 * ConfigError with its path when it is wrong, and returns `undefined` so that decoding
 * carries on and every problem of a file is reported in one go.
 */
import { type ConfigError, childPath, closestName, describeValue } from "./config-error.ts";

export interface DecodeContext {
  readonly errors: ConfigError[];
  /** Paths of strings made by `${{env.NAME}}`: they may stand for a number or a boolean. */
  readonly interpolated: ReadonlySet<string>;
  /** Paths whose interpolation failed (already reported): not checked a second time. */
  readonly unresolved: ReadonlySet<string>;
  /** The environment variables each interpolated string was made from, by path. */
  readonly variables?: ReadonlyMap<string, readonly string[]>;
}

export type Mapping = Record<string, unknown>;

export interface MappingSpec {
  /** The keys read here. */
  keys: readonly string[];
  required?: readonly string[];
  /** Keys Zilla knows but this gateway does not support → what to do instead. */
  unsupported?: Readonly<Record<string, string>>;
  /** Extra advice for a missing required key. */
  hints?: Readonly<Record<string, string>>;
}

/** Records an error; returns `undefined` so readers can `return report(...)`. */
export function report(ctx: DecodeContext, path: string, message: string): undefined {
  ctx.errors.push({ path, message });
  return undefined;
}

/** Whether a YAML value is a mapping (not a list, not a scalar). */
export function isMapping(value: unknown): value is Mapping {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether `key` is written in `m` (even with an empty value). */
export function has(m: Mapping, key: string): boolean {
  return Object.hasOwn(m, key);
}

/** Reads the optional key `key` of `m` with `read`; a valid value is stored at `out[field]`. */
export function readOptional<O, K extends keyof O>(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  key: string,
  read: (ctx: DecodeContext, value: unknown, path: string) => O[K] | undefined,
  out: O,
  field: K,
): void {
  if (!has(m, key)) return;
  const value = read(ctx, m[key], childPath(path, key));
  if (value !== undefined) out[field] = value;
}

/** A mapping whose keys are all known; reports unknown, unsupported and missing keys. */
export function readMapping(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  spec: MappingSpec,
): Mapping | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (!isMapping(value)) {
    return report(
      ctx,
      path || "(root)",
      `must be a mapping of keys, found ${describeValue(value)}`,
    );
  }
  for (const key of Object.keys(value)) {
    if (spec.keys.includes(key)) continue;
    const unsupported = spec.unsupported?.[key];
    report(ctx, childPath(path, key), unsupported ?? unknownKeyMessage(key, spec.keys));
  }
  for (const key of spec.required ?? []) {
    if (has(value, key)) continue;
    const hint = spec.hints?.[key];
    report(ctx, childPath(path, key), `required key "${key}" is missing; ${hint ?? "add it"}`);
  }
  return value;
}

/** The message for a key nobody reads: the likely intended key, else the valid ones. */
export function unknownKeyMessage(key: string, valid: readonly string[]): string {
  if (valid.length === 0) return `unknown key "${key}"; nothing is configured here, remove it`;
  const guess = closestName(key, valid);
  const list = `valid keys here: ${valid.join(", ")}`;
  return guess
    ? `unknown key "${key}"; did you mean "${guess}"? (${list})`
    : `unknown key "${key}"; remove it (${list})`;
}

/** A string; a number or boolean gets a hint to quote it. */
export function readString(ctx: DecodeContext, value: unknown, path: string): string | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") {
    return report(
      ctx,
      path,
      `must be a string, found ${describeValue(value)}; quote it: "${value}"`,
    );
  }
  return report(ctx, path, `must be a string, found ${describeValue(value)}`);
}

/** A string that is not blank. */
export function readName(ctx: DecodeContext, value: unknown, path: string): string | undefined {
  const s = readString(ctx, value, path);
  if (s === undefined) return undefined;
  if (s.trim() === "") return report(ctx, path, "must not be empty; write a value");
  return s;
}

/** A whole number (also from `${{env.NAME}}`), optionally within a range. */
export function readInteger(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  range: { min?: number; max?: number } = {},
): number | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  let n: number | undefined;
  if (typeof value === "number" && Number.isInteger(value)) n = value;
  else if (typeof value === "string" && ctx.interpolated.has(path) && /^\s*-?\d+\s*$/.test(value)) {
    n = Number(value);
  }
  if (n === undefined)
    return report(ctx, path, `must be a whole number, found ${describeValue(value)}`);
  const { min, max } = range;
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const bounds =
      min !== undefined && max !== undefined
        ? `between ${min} and ${max}`
        : min !== undefined
          ? `at least ${min}`
          : `at most ${max}`;
    return report(ctx, path, `must be ${bounds}, found ${n}`);
  }
  return n;
}

/** true or false (also from `${{env.NAME}}`). */
export function readBoolean(ctx: DecodeContext, value: unknown, path: string): boolean | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (typeof value === "boolean") return value;
  if (typeof value === "string" && ctx.interpolated.has(path) && /^(true|false)$/.test(value)) {
    return value === "true";
  }
  return report(ctx, path, `must be true or false, found ${describeValue(value)}`);
}

/** One of `choices`; the message lists them (and the likely intended one). */
export function readChoice<T extends string>(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  choices: readonly T[],
): T | undefined {
  const s = readString(ctx, value, path);
  if (s === undefined) return undefined;
  if ((choices as readonly string[]).includes(s)) return s as T;
  const guess = closestName(s, choices);
  const list = choices.join(", ");
  return report(
    ctx,
    path,
    guess
      ? `"${s}" is not valid here; did you mean "${guess}"? (one of: ${list})`
      : `"${s}" is not valid here; use one of: ${list}`,
  );
}

/** A list; a single string gets a hint to write it as a list. */
export function readList(ctx: DecodeContext, value: unknown, path: string): unknown[] | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (Array.isArray(value)) return value;
  const hint = typeof value === "string" ? `; write it as a list: [${value}]` : "";
  return report(ctx, path, `must be a list, found ${describeValue(value)}${hint}`);
}

/** A list whose items each decode with `item`; failed items are left out. */
export function readListOf<T>(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  item: (value: unknown, path: string) => T | undefined,
): T[] | undefined {
  const list = readList(ctx, value, path);
  if (list === undefined) return undefined;
  const out: T[] = [];
  list.forEach((v, i) => {
    const decoded = item(v, childPath(path, i));
    if (decoded !== undefined) out.push(decoded);
  });
  return out;
}

/** A list of non-empty strings. */
export function readStringList(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): string[] | undefined {
  return readListOf(ctx, value, path, (v, p) => readName(ctx, v, p));
}

/** A mapping of names to strings, in written order. */
export function readStringMap(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): Record<string, string> | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (!isMapping(value)) {
    return report(ctx, path, `must be a mapping of names to values, found ${describeValue(value)}`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    const s = readString(ctx, v, childPath(path, k));
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/** A reference to another named entry, with the path where it is written. */
export interface Ref {
  name: string;
  path: string;
}

/** Names of bindings, vaults, catalogs, guards (Zilla's pattern). */
export const namePattern = /^[a-zA-Z]+[a-zA-Z0-9._-]*$/;
export const nameRule = 'must start with a letter and use only letters, digits, ".", "_" and "-"';

/** The entries of a top-level map of named things (vaults, catalogs, guards, bindings). */
export function namedEntries(
  ctx: DecodeContext,
  m: Mapping,
  key: string,
  parentPath = "",
): Array<[string, unknown, string]> {
  if (!has(m, key)) return [];
  const value = m[key];
  const mapPath = childPath(parentPath, key);
  if (!isMapping(value)) {
    report(ctx, mapPath, `must be a mapping of names to ${key}, found ${describeValue(value)}`);
    return [];
  }
  const out: Array<[string, unknown, string]> = [];
  for (const [name, v] of Object.entries(value)) {
    const path = childPath(mapPath, name);
    if (!namePattern.test(name)) {
      report(ctx, path, `the name "${name}" ${nameRule}; rename it`);
      continue;
    }
    out.push([name, v, path]);
  }
  return out;
}

/** A reference written at `path`. */
export function ref(ctx: DecodeContext, value: unknown, path: string): Ref | undefined {
  const name = readName(ctx, value, path);
  return name === undefined ? undefined : { name, path };
}

/** A list of references. */
export function refs(ctx: DecodeContext, value: unknown, path: string): Ref[] | undefined {
  return readListOf(ctx, value, path, (v, p) => ref(ctx, v, p));
}
