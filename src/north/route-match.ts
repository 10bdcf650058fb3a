/**
 * Which grpc-kafka route serves a call (docs/contract.md: North): the first route with a `when` item whose
 * method pattern and metadata all match; a route with no `when` items matches every call.
 */
import type { GrpcKafkaRoute, GrpcKafkaWhen } from "../config/types.ts";
import { methodMatches } from "../service-registry.ts";

/** Request metadata as route matching reads it: one value per lower-case name. */
export interface MetadataLookup {
  get(name: string): string | null;
}

/** The first route matching `path` ("pkg.Service/Method") and the request metadata. */
export function matchRoute(
  routes: readonly GrpcKafkaRoute[],
  path: string,
  metadata: MetadataLookup,
): GrpcKafkaRoute | undefined {
  return routes.find(
    (route) =>
      route.when.length === 0 || route.when.some((when) => whenMatches(when, path, metadata)),
  );
}

/** Whether one `when` item matches the call. */
export function whenMatches(when: GrpcKafkaWhen, path: string, metadata: MetadataLookup): boolean {
  if (when.method !== undefined && !methodMatches(when.method, path)) return false;
  const wanted = when.metadata;
  // Most routes name no metadata: no entries array per call for them (north matches every call).
  if (wanted === undefined) return true;
  for (const name in wanted) {
    if (metadata.get(name.toLowerCase()) !== wanted[name]) return false;
  }
  return true;
}
