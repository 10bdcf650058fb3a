/**
 * References between the parts of a namespace: every exit, entry, vault, catalog subject and
 * guard a binding names exists, and every method a route names is a generated one.
 */
import { childPath, closestName } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import { checkAuthorizationGuard } from "./resolve-guards.ts";
import type { TopologyContext } from "./topology-context.ts";

/** Reports each name that refers to nothing (with the closest existing name, if any). */
export function checkReferences(ctx: TopologyContext): void {
  const { ns, fail } = ctx;
  const checkRef = (r: Ref | undefined, kind: string, names: Iterable<string>, where: string) => {
    if (!r) return;
    const all = [...names];
    if (all.includes(r.name)) return;
    const guess = closestName(r.name, all);
    fail(
      r.path,
      guess
        ? `no ${kind} is named "${r.name}"; did you mean "${guess}"?`
        : `no ${kind} is named "${r.name}"; add it under ${where} or fix the name`,
    );
  };
  for (const b of ns.bindings.values()) {
    checkRef(b.exit, "binding", ns.bindings.keys(), "bindings");
    for (const route of b.routes) {
      checkRef(route.exit, "binding", ns.bindings.keys(), "bindings");
      for (const guard of route.guarded) {
        checkRef(guard, "guard", ns.guards.keys(), "guards");
        if (b.role !== "grpc.server" && b.role !== "grpc-kafka.proxy" && b.role !== "unknown") {
          fail(
            guard.path,
            `"guarded" on ${b.role.replace(".", " ")} routes is not supported by this gateway; guard the grpc server's or the grpc-kafka proxy's routes`,
          );
        }
      }
    }
    if (b.role === "tls.server" || b.role === "tls.client")
      checkRef(b.vault, "vault", ns.vaults.keys(), "vaults");
    if (b.role === "tls.server") checkAuthorizationGuard(b.authorization, "x509", ns, fail);
    if (b.role === "http.server") checkAuthorizationGuard(b.authorization?.guard, "jwt", ns, fail);
    if (b.role === "kafka-grpc.remote_server")
      checkRef(b.entry, "binding", ns.bindings.keys(), "bindings");
    if (b.role === "grpc.server") {
      for (const c of b.catalog) {
        const catalog = ns.catalogs.get(c.catalog.name);
        checkRef(c.catalog, "catalog", ns.catalogs.keys(), "catalogs");
        if (catalog && !catalog.subjects.has(c.subject)) {
          const subjects = [...catalog.subjects.keys()];
          const guess = closestName(c.subject, subjects);
          fail(
            c.path,
            `catalog "${catalog.name}" has no subject "${c.subject}"${guess ? `; did you mean "${guess}"?` : ""} (its subjects: ${subjects.join(", ") || "none"}); add it under catalogs.${catalog.name}.options.subjects or fix the name`,
          );
        }
      }
    }
  }
  for (const exporter of ns.telemetry?.exporters ?? []) {
    checkRef(exporter.vault, "vault", ns.vaults.keys(), "vaults");
  }
}

/** Reports each method a route names that no generated service has. */
export function checkRouteMethods(ctx: TopologyContext): void {
  const { ns, registry, fail } = ctx;
  const methodKnown = (method: string | undefined, path: string): boolean => {
    if (method === undefined) return false;
    if (registry.matching(method).length > 0) return true;
    const wildcard = method.endsWith("/*");
    fail(
      path,
      wildcard
        ? `"${method}" matches no generated service; run "buf generate" after adding its proto to proto/, or fix the name`
        : `"${method}" is not a method of any generated service; run "buf generate" after adding it to proto/, or fix the name`,
    );
    return false;
  };
  for (const b of ns.bindings.values()) {
    if (b.role === "grpc.server" || b.role === "grpc.client" || b.role === "grpc-kafka.proxy") {
      for (const r of b.routes)
        for (const w of r.when) methodKnown(w.method, childPath(w.path, "method"));
    }
    if (b.role === "kafka-grpc.remote_server") {
      for (const r of b.routes)
        for (const w of r.when) methodKnown(w.method, childPath(w.path, "method"));
    }
  }
}
