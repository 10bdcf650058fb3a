/**
 * The guard checks of the binding graph (topology.ts calls these): authorization options name
 * a guard of the right type, inline keys import, every guarded route is reachable only through
 * a listener that checks its guard, and `${guarded[...]}` expressions name a guard the route is
 * guarded by (Zilla would silently write an empty string).
 */
import { importJWK } from "jose";
import { childPath } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import type { GuardedRef } from "./decode-guards.ts";
import { guardsOfExpressions } from "./decode-guards.ts";
import type { GrpcKafkaProxy, GrpcServer, Namespace } from "./schema.ts";
import type {
  FetchWith,
  GuardConfig,
  JwkConfig,
  MethodGuard,
  NorthListener,
  ProduceWith,
  RouteGuard,
} from "./types.ts";

type Fail = (path: string, message: string) => undefined;

/** Reports an authorization option that names a guard of the wrong type. */
export function checkAuthorizationGuard(
  ref: Ref | undefined,
  expected: "jwt" | "x509",
  ns: Namespace,
  fail: Fail,
): void {
  if (!ref) return;
  const guard = ns.guards.get(ref.name);
  if (!guard) {
    fail(ref.path, `no guard is named "${ref.name}"; add it under guards or fix the name`);
    return;
  }
  if (guard.type === undefined || guard.type === expected) return;
  fail(
    ref.path,
    expected === "jwt"
      ? `guard "${ref.name}" is an x509 guard, which reads TLS client certificates; name it under the tls server's options.authorization, and a jwt guard here`
      : `guard "${ref.name}" is a jwt guard, which reads tokens; name it under the http server's options.authorization, and an x509 guard here`,
  );
}

/** Default algorithm to import an inline key with when it names none (the check only). */
function importAlgorithm(key: JwkConfig): string {
  if (typeof key.alg === "string") return key.alg;
  if (key.kty === "RSA") return "RS256";
  if (key.kty === "OKP") return "EdDSA";
  return key.crv === "P-384" ? "ES384" : key.crv === "P-521" ? "ES512" : "ES256";
}

/** Imports every inline jwt key, so a key that cannot verify anything fails validation. */
export async function checkJwtKeys(ns: Namespace, fail: Fail): Promise<void> {
  for (const guard of ns.guards.values()) {
    const config = guard.config;
    if (config?.type !== "jwt" || !config.keys) continue;
    const keysPath = childPath(childPath(guard.path, "options"), "keys");
    for (const [i, key] of config.keys.entries()) {
      const { use: _use, key_ops: _ops, ...jwk } = key;
      try {
        await importJWK(jwk, importAlgorithm(key));
      } catch (error) {
        fail(
          childPath(keysPath, i),
          `cannot be used as a public key (${(error as Error).message}); copy the key from the issuer's JWKS again`,
        );
      }
    }
  }
}

export interface NorthGuardsInput {
  ns: Namespace;
  proxy: GrpcKafkaProxy;
  grpcServers: Iterable<GrpcServer>;
  listeners: readonly NorthListener[];
  fail: Fail;
}

export interface NorthGuards {
  /** Per proxy route (in order), its guards, when it has any. */
  routeGuards: Array<RouteGuard[] | undefined>;
  methodGuards?: MethodGuard[];
  guards?: Record<string, GuardConfig>;
}

/** Resolves the guards of one north pipeline and checks that each can be satisfied. */
export function resolveNorthGuards(input: NorthGuardsInput): NorthGuards {
  const { ns, proxy, listeners, fail } = input;
  const checked = new Set<string>();
  for (const l of listeners) {
    if (l.authorization) checked.add(l.authorization.guard);
    if (l.tls?.authorization) checked.add(l.tls.authorization.guard);
  }
  const used = new Set<string>(checked);
  const toRouteGuards = (guarded: GuardedRef[]): RouteGuard[] | undefined => {
    if (guarded.length === 0) return undefined;
    for (const g of guarded) {
      used.add(g.name);
      if (ns.guards.has(g.name) && !checked.has(g.name)) {
        fail(
          g.path,
          `guard "${g.name}" checks no call on the way here: name it under options.authorization of the http server (jwt) or the tls server (x509) in front of this proxy, or remove it`,
        );
      }
    }
    return guarded.map((g) => ({ guard: g.name, roles: g.roles }));
  };

  const routeGuards = proxy.routes.map((route) => {
    const guards = toRouteGuards(route.guarded);
    if (route.with) {
      checkExpressions(input, route.with, childPath(route.path, "with"), route.guarded);
    }
    return guards;
  });

  let methodGuards: MethodGuard[] | undefined;
  let methodGuardsOf: string | undefined;
  for (const g of input.grpcServers) {
    if (!g.routes.some((r) => r.guarded.length > 0)) continue;
    const mine = g.routes.flatMap((r): MethodGuard[] => {
      const guarded = toRouteGuards(r.guarded) ?? [];
      if (r.when.length === 0) return [{ guarded }];
      return r.when.map((w) =>
        w.method === undefined ? { guarded } : { method: w.method, guarded },
      );
    });
    if (methodGuards && JSON.stringify(methodGuards) !== JSON.stringify(mine)) {
      fail(
        childPath(g.path, "routes"),
        `grpc servers "${methodGuardsOf}" and "${g.name}" lead to the same proxy with different guarded routes; make them the same`,
      );
    }
    methodGuards ??= mine;
    methodGuardsOf ??= g.name;
  }

  const guards: Record<string, GuardConfig> = {};
  for (const name of used) {
    const config = ns.guards.get(name)?.config;
    if (config) guards[name] = config;
  }
  return {
    routeGuards,
    ...(methodGuards ? { methodGuards } : {}),
    ...(Object.keys(guards).length > 0 ? { guards } : {}),
  };
}

/** Every `${guarded[...]}` in a route's key, overrides and filters names one of its guards. */
function checkExpressions(
  input: NorthGuardsInput,
  w: ProduceWith | FetchWith,
  withPath: string,
  guarded: GuardedRef[],
): void {
  const values: Array<[string, string]> = [];
  if (w.capability === "produce") {
    if (w.key !== undefined) values.push([w.key, childPath(withPath, "key")]);
    for (const [name, value] of Object.entries(w.overrides ?? {})) {
      values.push([value, childPath(childPath(withPath, "overrides"), name)]);
    }
  } else {
    for (const [i, f] of (w.filters ?? []).entries()) {
      const fp = childPath(childPath(withPath, "filters"), i);
      if (f.key !== undefined) values.push([f.key, childPath(fp, "key")]);
      for (const [name, value] of Object.entries(f.headers ?? {})) {
        values.push([value, childPath(childPath(fp, "headers"), name)]);
      }
    }
  }
  const errors = { errors: [], interpolated: new Set<string>(), unresolved: new Set<string>() };
  for (const [value, path] of values) {
    for (const name of guardsOfExpressions(errors, value, path)) {
      if (!guarded.some((g) => g.name === name)) {
        input.fail(
          path,
          `"${value}" reads guard "${name}", which does not guard this route; add guarded: { ${name}: [] } to the route`,
        );
      }
    }
  }
  for (const e of errors.errors as Array<{ path: string; message: string }>) {
    input.fail(e.path, e.message);
  }
}
