/**
 * Following the binding graph one link at a time: the binding an exit leads to, checked
 * against the roles that may come next in a chain this gateway runs.
 */
import { childPath } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import type { Binding, Namespace, Role } from "./schema.ts";
import type { Fail } from "./topology-context.ts";

export interface Links {
  /** The one binding `b` leads to, which must have one of the `expected` roles. */
  next(b: Binding, expected: readonly Role[]): Binding | undefined;
  /** The binding `r` names, which must have one of the `expected` roles after `from`. */
  checkTarget(r: Ref | undefined, from: Role, expected: readonly Role[]): Binding | undefined;
}

/** Links of `ns`; a wrong or ambiguous link is reported to `fail` once. */
export function createLinks(ns: Namespace, fail: Fail): Links {
  const binding = (r: Ref | undefined): Binding | undefined =>
    r ? ns.bindings.get(r.name) : undefined;
  const describeRole = (role: Role) => role.replace(".", " ");
  /** "a tls server", "an http client". */
  const aRole = (role: Role) => `${role.startsWith("http") ? "an" : "a"} ${describeRole(role)}`;
  const anyOf = (roles: readonly Role[]) => roles.map(aRole).join(" or ");
  const nextCache = new Map<Binding, Binding | undefined>();
  /** The one binding `b` leads to, which must have one of the `expected` roles. */
  const next = (b: Binding, expected: readonly Role[]): Binding | undefined => {
    if (nextCache.has(b)) return nextCache.get(b);
    nextCache.set(b, undefined);
    const exits = new Map<string, Ref>();
    for (const route of b.routes) if (route.exit) exits.set(route.exit.name, route.exit);
    if (b.exit && !exits.has(b.exit.name)) exits.set(b.exit.name, b.exit);
    const wanted = expected.map(describeRole).join(" or ");
    if (exits.size === 0) {
      if (b.routes.every((r) => r.exit === undefined)) {
        fail(
          childPath(b.path, "exit"),
          `required key "exit" is missing; add the ${wanted} this ${describeRole(b.role)} leads to`,
        );
      }
      return undefined;
    }
    if (exits.size > 1) {
      fail(
        childPath(b.path, "routes"),
        `routes lead to different bindings (${[...exits.keys()].join(", ")}); this gateway supports a single ${wanted} after ${aRole(b.role)}, so give every route the same exit`,
      );
      return undefined;
    }
    const [exit] = exits.values();
    const target = binding(exit);
    if (!exit || !target || target.role === "unknown") return undefined;
    if (!expected.includes(target.role)) {
      fail(
        exit.path,
        `"${target.name}" is ${aRole(target.role)}; ${aRole(b.role)} must lead to ${anyOf(expected)} here`,
      );
      return undefined;
    }
    nextCache.set(b, target);
    return target;
  };
  const checkTarget = (
    r: Ref | undefined,
    from: Role,
    expected: readonly Role[],
  ): Binding | undefined => {
    const target = binding(r);
    if (!r || !target || target.role === "unknown") return undefined;
    if (!expected.includes(target.role)) {
      return fail(
        r.path,
        `"${target.name}" is ${aRole(target.role)}; ${aRole(from)} must lead to ${anyOf(expected)} here`,
      );
    }
    return target;
  };
  return { next, checkTarget };
}
