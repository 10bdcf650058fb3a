/**
 * zilla.yaml `telemetry` as TelemetryConfig: attributes, metric names, per binding metrics
 * and exporters, with the TLS an OTLP exporter names.
 */
import type { TopologyContext } from "./topology-context.ts";
import type { TlsResolver } from "./topology-tls.ts";
import type { TelemetryConfig, TelemetryExporter, TlsClientOptions } from "./types.ts";

/** The namespace's telemetry (undefined when it has none). */
export function resolveTelemetry(
  ctx: TopologyContext,
  tls: TlsResolver,
): TelemetryConfig | undefined {
  const { ns } = ctx;
  const { clientTls } = tls;
  let telemetry: TelemetryConfig | undefined;
  if (ns.telemetry) {
    const exporters: TelemetryExporter[] = [];
    for (const e of ns.telemetry.exporters) {
      if (e.type === "stdout") exporters.push({ name: e.name, type: "stdout" });
      else if (e.type === "prometheus")
        exporters.push({ name: e.name, type: "prometheus", endpoints: e.endpoints ?? [] });
      else if (e.otlp?.endpoint) {
        let tls: TlsClientOptions | undefined;
        if (e.otlp.tls) {
          tls = clientTls(
            {
              role: "tls.client",
              name: e.name,
              path: e.path,
              routes: [],
              ...(e.vault ? { vault: e.vault } : {}),
              ...(e.otlp.tls.keys ? { keys: e.otlp.tls.keys } : {}),
              ...(e.otlp.tls.trust ? { trust: e.otlp.tls.trust } : {}),
              ...(e.otlp.tls.trustcacerts !== undefined
                ? { trustcacerts: e.otlp.tls.trustcacerts }
                : {}),
            },
            e.otlp.tls.path,
          );
        }
        exporters.push({
          name: e.name,
          type: "otlp",
          intervalSeconds: e.otlp.intervalSeconds,
          signals: e.otlp.signals,
          endpoint: e.otlp.endpoint,
          ...(e.otlp.authorization !== undefined ? { authorization: e.otlp.authorization } : {}),
          ...(tls ? { tls } : {}),
        });
      }
    }
    telemetry = {
      attributes: ns.telemetry.attributes,
      metrics: ns.telemetry.metrics,
      exporters,
      bindings: ns.telemetry.bindings,
    };
  }
  return telemetry;
}
