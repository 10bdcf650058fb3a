/**
 * The gateway's telemetry from zilla.yaml `telemetry`: the metrics registry (always; the
 * ops port serves it, and each `prometheus` exporter endpoint too), the tracer (only with an
 * `otlp` exporter), and how loud the one log line per call is (a `stdout` exporter asks for
 * Zilla's events on stdout, so call lines are written at info rather than debug).
 */
import type { GatewayConfig } from "../config/types.ts";
import { createGatewayMetrics, type GatewayMetrics } from "./gateway-metrics.ts";
import type { LogLevel } from "./logger.ts";
import { createMetricsRegistry, type MetricsRegistry } from "./metrics.ts";
import type { CallTracer } from "./tracing.ts";

export interface Telemetry {
  readonly registry: MetricsRegistry;
  readonly metrics: GatewayMetrics;
  /** Undefined without an OTLP endpoint: calls then make no spans at all. */
  readonly tracer: CallTracer | undefined;
  /** The level of the one line logged per call (north and west). */
  readonly callLogLevel: LogLevel;
  /** zilla.yaml prometheus exporter endpoints (HTTP port and path). */
  readonly prometheusEndpoints: ReadonlyArray<{ port: number; path: string }>;
  /** Exports the spans still buffered and stops the tracer. */
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  /** Overrides the OTLP location of the config (tests). */
  otlpLocation?: string;
  /** How long spans wait to be batched (default 1000 ms). */
  spanBatchDelayMs?: number;
}

/** Builds the telemetry a config asks for; loads the OpenTelemetry SDK only if traced. */
export async function createTelemetry(
  config: GatewayConfig,
  options: TelemetryOptions = {},
): Promise<Telemetry> {
  const registry = createMetricsRegistry();
  const metrics = createGatewayMetrics(registry, config.name);
  const exporters = config.telemetry?.exporters ?? [];
  const otlp = exporters.find((e) => e.type === "otlp");
  const location =
    options.otlpLocation ?? (otlp?.type === "otlp" ? otlp.endpoint.location : undefined);
  let tracer: CallTracer | undefined;
  if (location !== undefined) {
    // Imported here so that a gateway without tracing never loads the SDK.
    const { createOtelTracer } = await import("./otel-tracer.ts");
    tracer = createOtelTracer({
      location,
      attributes: config.telemetry?.attributes ?? {},
      ...(otlp?.type === "otlp" && otlp.authorization !== undefined
        ? { authorization: otlp.authorization }
        : {}),
      ...(options.spanBatchDelayMs !== undefined ? { batchDelayMs: options.spanBatchDelayMs } : {}),
    });
  }
  return {
    registry,
    metrics,
    tracer,
    callLogLevel: exporters.some((e) => e.type === "stdout") ? "info" : "debug",
    prometheusEndpoints: prometheusEndpointsOf(config),
    async shutdown() {
      await tracer?.shutdown().catch(() => {});
    },
  };
}

/** zilla.yaml prometheus exporter endpoints (HTTP port and path). */
export function prometheusEndpointsOf(config: GatewayConfig): { port: number; path: string }[] {
  return (config.telemetry?.exporters ?? []).flatMap((e) =>
    e.type === "prometheus" ? e.endpoints.map(({ port, path }) => ({ port, path })) : [],
  );
}
