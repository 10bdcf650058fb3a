/**
 * The non-RPC HTTP surface (Hono): liveness, readiness and metrics. Served on the HTTP/1.1
 * ops port, and also as the fallback of the north ports when `--ops-on-public-ports` asks
 * for it (they name topics and groups, so not by default: docs/security.md).
 */
import { Hono } from "hono";
import { prometheusContentType } from "./metrics.ts";
import type { ReadinessReport } from "./readiness.ts";

export interface OpsState {
  /**
   * Whether the gateway can take calls (Kafka reachable, reply readers positioned, groups
   * assigned); a report's reasons are shown by /readyz.
   */
  ready(): boolean | ReadinessReport | Promise<boolean | ReadinessReport>;
  /** Prometheus text exposition. */
  metrics?(): string | Promise<string>;
  /** More paths that serve the metrics (zilla.yaml prometheus endpoints), besides /metrics. */
  metricsPaths?: readonly string[];
}

/** The ops routes: GET /healthz, /readyz, /metrics. */
export function createOpsApp(state: OpsState): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.text("ok\n"));
  app.get("/readyz", async (c) => {
    const answer = await state.ready();
    const report = typeof answer === "boolean" ? { ready: answer, reasons: [] } : answer;
    if (report.ready) return c.text("ready\n");
    return c.text(["not ready", ...report.reasons].join("\n").concat("\n"), 503);
  });
  const metrics = metricsResponder(state.metrics);
  for (const path of new Set(["/metrics", ...(state.metricsPaths ?? [])])) app.get(path, metrics);
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}

/** A zilla.yaml prometheus exporter endpoint: the metrics on `path`, nothing else. */
export function createMetricsApp(metrics: () => string | Promise<string>, path: string): Hono {
  const app = new Hono();
  app.get(path, metricsResponder(metrics));
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}

function metricsResponder(metrics: (() => string | Promise<string>) | undefined) {
  return async () =>
    new Response(await (metrics?.() ?? ""), {
      headers: { "content-type": prometheusContentType },
    });
}
