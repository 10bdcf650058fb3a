/**
 * The non-RPC HTTP surface (Hono): liveness, readiness and metrics. Served on the HTTP/1.1
 * ops port and as the fallback of the north ports, so a load balancer can probe either.
 */
import { Hono } from "hono";

export interface OpsState {
  /** Whether the gateway can take calls (Kafka reachable, reply reader positioned, group assigned). */
  ready(): boolean;
  /** Prometheus text exposition. */
  metrics?(): string;
}

/** The ops routes: GET /healthz, /readyz, /metrics. */
export function createOpsApp(state: OpsState): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.text("ok\n"));
  app.get("/readyz", (c) => (state.ready() ? c.text("ready\n") : c.text("not ready\n", 503)));
  app.get("/metrics", (c) =>
    c.body(state.metrics?.() ?? "", 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    }),
  );
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}
