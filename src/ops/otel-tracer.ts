/**
 * The call tracer on the OpenTelemetry JS SDK: spans batched and exported as OTLP/HTTP to
 * `<location>/v1/traces`. Nothing is registered globally (no global tracer provider, context
 * manager or propagator): parents come from the records' `traceparent`, so the gateway
 * neither needs nor disturbs an application's own OpenTelemetry setup.
 */
import {
  type Attributes,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  type CallSpan,
  type CallTracer,
  formatTraceparent,
  parseTraceparent,
  type SpanInit,
} from "./tracing.ts";

export interface OtelTracerOptions {
  /** The collector's base URL, e.g. http://otel-collector:4318. */
  location: string;
  /** Sent as the Authorization header. */
  authorization?: string;
  /** Resource attributes (zilla.yaml `telemetry.attributes`); service.name defaults below. */
  attributes: Record<string, string>;
  /** How long spans may wait to be batched (default 1000 ms). */
  batchDelayMs?: number;
}

const defaultServiceName = "grpc-kafka-gateway";

/** A tracer exporting to an OTLP/HTTP collector. */
export function createOtelTracer(options: OtelTracerOptions): CallTracer {
  const url = `${options.location.replace(/\/+$/, "")}/v1/traces`;
  const exporter = new OTLPTraceExporter({
    url,
    ...(options.authorization ? { headers: { authorization: options.authorization } } : {}),
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      "service.name": defaultServiceName,
      ...options.attributes,
    }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, { scheduledDelayMillis: options.batchDelayMs ?? 1_000 }),
    ],
  });
  const tracer = provider.getTracer("grpc-kafka-gateway");
  return {
    startServer: (init) => startSpan(tracer, SpanKind.SERVER, init),
    startClient: (init) => startSpan(tracer, SpanKind.CLIENT, init),
    async shutdown() {
      await provider.shutdown();
    },
  };
}

function startSpan(tracer: Tracer, kind: SpanKind, init: SpanInit): CallSpan {
  const parent = parseTraceparent(init.parent);
  const context = parent
    ? trace.setSpanContext(ROOT_CONTEXT, {
        traceId: parent.traceId,
        spanId: parent.spanId,
        traceFlags: parent.flags & 1,
        isRemote: true,
      })
    : ROOT_CONTEXT;
  const attributes: Attributes = {
    "rpc.system": "grpc",
    "rpc.service": init.service,
    "rpc.method": init.method,
    "messaging.system": "kafka",
    "messaging.destination.name": init.topic,
  };
  if (init.peer !== undefined) attributes["server.address"] = init.peer;
  const span = tracer.startSpan(`${init.service}/${init.method}`, { kind, attributes }, context);
  return new OtelCallSpan(span);
}

class OtelCallSpan implements CallSpan {
  private readonly span: Span;
  readonly traceparent: string;

  constructor(span: Span) {
    this.span = span;
    const c = span.spanContext();
    this.traceparent = formatTraceparent({
      traceId: c.traceId,
      spanId: c.spanId,
      flags: c.traceFlags,
    });
  }

  correlate(correlationId: string): void {
    // OpenTelemetry's name for what Kafka request/reply calls a correlation id.
    this.span.setAttribute("messaging.message.conversation_id", correlationId);
  }

  end(code: number, message: string): void {
    this.span.setAttribute("rpc.grpc.status_code", code);
    if (code !== 0) this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.span.end();
  }
}
