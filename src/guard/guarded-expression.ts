/**
 * Zilla's `${guarded['<guard>'].identity}` and `${guarded['<guard>'].attributes.<name>}` in a
 * route's `key`, `overrides` and fetch `filters`: replaced by the caller's identity (or
 * attribute) from that guard's session. Zilla replaces a value only when the expression is
 * the whole value; here it may also sit inside one ("tenant-${guarded['jwt0'].identity}").
 */
import type { FetchWith, ProduceWith } from "../config/types.ts";
import type { GuardSession } from "./guard-session.ts";

const expression =
  /\$\{guarded\['([a-zA-Z][a-zA-Z0-9._-]*)'\]\.(?:identity|attributes\.([a-zA-Z][a-zA-Z0-9._:-]*))\}/g;

/** Whether a value holds an expression. */
export function hasGuardedExpression(value: string | undefined): boolean {
  return value?.includes("${guarded[") === true;
}

/** The value with each expression replaced ("" when the session lacks it, as Zilla does). */
export function resolveGuardedValue(
  value: string,
  sessions: ReadonlyMap<string, GuardSession>,
): string {
  if (!hasGuardedExpression(value)) return value;
  return value.replace(expression, (_, guard: string, attribute: string | undefined) => {
    const session = sessions.get(guard);
    if (!session) return "";
    return (attribute === undefined ? session.identity : session.attributes[attribute]) ?? "";
  });
}

/** A produce or fetch `with` with its expressions resolved (the same object when it has none). */
export function resolveGuardedWith<W extends ProduceWith | FetchWith>(
  w: W,
  sessions: ReadonlyMap<string, GuardSession>,
): W {
  const resolve = (v: string) => resolveGuardedValue(v, sessions);
  const mapValues = (m: Record<string, string>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, resolve(v)]));
  if (w.capability === "produce") {
    const uses =
      hasGuardedExpression(w.key) || Object.values(w.overrides ?? {}).some(hasGuardedExpression);
    if (!uses) return w;
    return {
      ...w,
      ...(w.key !== undefined ? { key: resolve(w.key) } : {}),
      ...(w.overrides ? { overrides: mapValues(w.overrides) } : {}),
    };
  }
  const filters = w.filters;
  const uses = filters?.some(
    (f) => hasGuardedExpression(f.key) || Object.values(f.headers ?? {}).some(hasGuardedExpression),
  );
  if (!uses || !filters) return w;
  return {
    ...w,
    filters: filters.map((f) => ({
      ...(f.key !== undefined ? { key: resolve(f.key) } : {}),
      ...(f.headers ? { headers: mapValues(f.headers) } : {}),
    })),
  };
}
