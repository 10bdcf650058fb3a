/**
 * Tracing as north and west see it: a span per call, started from the W3C `traceparent` the
 * call carries, and the `traceparent` to send on so the next hop's span is its child. The
 * OpenTelemetry SDK behind it (otel-tracer.ts) is loaded only when an OTLP endpoint is
 * configured; without one there is no tracer and calls skip this entirely.
 */

/** One call's span. */
export interface CallSpan {
  /** This span as a W3C traceparent, for the records or the upstream call. */
  readonly traceparent: string;
  /** Adds the call's correlation id (known once the call's identity is built). */
  correlate(correlationId: string): void;
  /** Ends the span with the call's gRPC status. */
  end(code: number, message: string): void;
}

export interface SpanInit {
  /** The incoming W3C traceparent, if any (invalid values start a new trace). */
  parent: string | undefined;
  /** Full service name, e.g. "grpc.examples.echo.Echo". */
  service: string;
  /** Simple method name, e.g. "UnaryEcho". */
  method: string;
  /** The Kafka topic the call's records go to (north) or came from (west). */
  topic: string;
  /** The upstream's host:port (west only). */
  peer?: string;
}

export interface CallTracer {
  /** A north call span (server kind). */
  startServer(init: SpanInit): CallSpan;
  /** A west upstream call span (client kind). */
  startClient(init: SpanInit): CallSpan;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

/** The metadata name of the W3C trace context. */
export const traceparentName = "traceparent";

/** The `traceparent` entry of call metadata, if any. */
export function traceparentOf(
  metadata: ReadonlyArray<readonly [string, string]>,
): string | undefined {
  for (const [name, value] of metadata) {
    if (name.length === traceparentName.length && name.toLowerCase() === traceparentName) {
      return value;
    }
  }
  return undefined;
}

/** The metadata with its `traceparent` replaced by (or, when absent, extended with) `value`. */
export function withTraceparent(
  metadata: ReadonlyArray<readonly [string, string]>,
  value: string,
): [string, string][] {
  const out: [string, string][] = [];
  let replaced = false;
  for (const [name, v] of metadata) {
    if (name.toLowerCase() === traceparentName) {
      if (!replaced) out.push([name, value]);
      replaced = true;
    } else out.push([name, v]);
  }
  if (!replaced) out.push([traceparentName, value]);
  return out;
}

export interface TraceContext {
  traceId: string;
  spanId: string;
  /** Bit 0: sampled. */
  flags: number;
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Reads a W3C traceparent (version 00, or a later one read as 00); undefined when invalid. */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (value === undefined) return undefined;
  const m = traceparentPattern.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as string[];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId as string) || /^0+$/.test(spanId as string)) return undefined;
  return {
    traceId: traceId as string,
    spanId: spanId as string,
    flags: Number.parseInt(flags as string, 16),
  };
}

/** A trace context as a version-00 traceparent. */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.flags & 0xff).toString(16).padStart(2, "0")}`;
}
