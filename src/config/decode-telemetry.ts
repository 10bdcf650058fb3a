/**
 * Decoders of `telemetry` (attributes, metrics, stdout / prometheus / otlp exporters) and of
 * a binding's own `telemetry.metrics`.
 */
import { childPath, describeValue } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  isMapping,
  namedEntries,
  readBoolean,
  readChoice,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readOptional,
  readString,
  readStringMap,
  ref,
  refs,
  report,
} from "./decode.ts";
import type { TelemetryExporterModel, TelemetryModel } from "./schema.ts";

/** Every metric name Zilla defines for the stream, http and grpc metric groups. */
export const knownMetrics: readonly string[] = [
  ...["active", "opens", "data", "errors", "closes"].flatMap((m) => [
    `stream.${m}.received`,
    `stream.${m}.sent`,
  ]),
  "http.request.size",
  "http.response.size",
  "http.active.requests",
  "http.duration",
  "grpc.request.size",
  "grpc.response.size",
  "grpc.active.requests",
  "grpc.duration",
  "grpc.requests.per.rpc",
  "grpc.responses.per.rpc",
];

/** A binding's `telemetry`: the metric names or patterns it records. */
export function decodeBindingTelemetry(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): string[] | undefined {
  const m = readMapping(ctx, value, path, { keys: ["metrics", "attributes"] });
  if (!m) return undefined;
  if (has(m, "attributes")) readStringMap(ctx, m.attributes, childPath(path, "attributes"));
  if (!has(m, "metrics")) return [];
  return readListOf(ctx, m.metrics, childPath(path, "metrics"), (v, p) => {
    const name = readName(ctx, v, p);
    if (name === undefined) return undefined;
    const pattern = new RegExp(
      `^${name.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`,
    );
    if (!knownMetrics.some((k) => pattern.test(k))) {
      return report(
        ctx,
        p,
        `"${name}" matches no metric; use names or patterns such as stream.*, http.*, grpc.*`,
      );
    }
    return name;
  });
}

/** The namespace `telemetry`: attributes, metrics, exporters. */
export function decodeTelemetry(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): Omit<TelemetryModel, "bindings"> | undefined {
  const m = readMapping(ctx, value, path, { keys: ["attributes", "metrics", "exporters"] });
  if (!m) return undefined;
  const telemetry: Omit<TelemetryModel, "bindings"> = {
    attributes: {},
    metrics: [],
    exporters: [],
  };
  if (has(m, "attributes")) {
    telemetry.attributes = readStringMap(ctx, m.attributes, childPath(path, "attributes")) ?? {};
  }
  if (has(m, "metrics")) {
    telemetry.metrics =
      readListOf(ctx, m.metrics, childPath(path, "metrics"), (v, p) =>
        readChoice(ctx, v, p, knownMetrics),
      ) ?? [];
  }
  for (const [name, v, p] of namedEntries(ctx, m, "exporters", path)) {
    const exporter = decodeExporter(ctx, name, v, p);
    if (exporter) telemetry.exporters.push(exporter);
  }
  return telemetry;
}

function decodeExporter(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): TelemetryExporterModel | undefined {
  if (!isMapping(value))
    return report(
      ctx,
      path,
      `must be a mapping with type and options, found ${describeValue(value)}`,
    );
  const typePath = childPath(path, "type");
  if (!has(value, "type")) {
    readMapping(ctx, value, path, {
      keys: ["type", "options", "vault"],
      required: ["type"],
      hints: { type: "add one of: stdout, prometheus, otlp" },
    });
    return undefined;
  }
  const type = readChoice(ctx, value.type, typePath, ["stdout", "prometheus", "otlp"] as const);
  if (type === undefined) return undefined;
  const m = readMapping(ctx, value, path, {
    keys:
      type === "otlp"
        ? ["type", "options", "vault"]
        : type === "prometheus"
          ? ["type", "options"]
          : ["type"],
    required: type === "otlp" ? ["options"] : [],
    unsupported: {
      options: `a ${type} exporter takes no "options"; remove them`,
      vault: `a ${type} exporter takes no "vault"; remove it`,
    },
    hints: { options: "add options.endpoint.location, e.g. http://otel-collector:4318" },
  });
  if (!m) return undefined;
  const exporter: TelemetryExporterModel = { path, name, type };
  const op = childPath(path, "options");
  if (type === "prometheus") {
    exporter.endpoints = [];
    if (!has(m, "options")) return exporter;
    const o = readMapping(ctx, m.options, op, { keys: ["endpoints"] });
    if (!o || !has(o, "endpoints")) return exporter;
    exporter.endpoints =
      readListOf(ctx, o.endpoints, childPath(op, "endpoints"), (v, p) => {
        const e = readMapping(ctx, v, p, {
          keys: ["scheme", "port", "path"],
          required: ["scheme", "port"],
        });
        if (!e) return undefined;
        const scheme = has(e, "scheme")
          ? readChoice(ctx, e.scheme, childPath(p, "scheme"), ["http"] as const)
          : undefined;
        const port = has(e, "port")
          ? readInteger(ctx, e.port, childPath(p, "port"), { min: 0, max: 65535 })
          : undefined;
        const endpointPath = has(e, "path")
          ? readName(ctx, e.path, childPath(p, "path"))
          : "/metrics";
        if (!scheme || port === undefined || endpointPath === undefined) return undefined;
        return { scheme, port, path: endpointPath };
      }) ?? [];
    return exporter;
  }
  if (type === "otlp") {
    readOptional(ctx, m, path, "vault", ref, exporter, "vault");
    if (!has(m, "options")) return exporter;
    exporter.otlp = decodeOtlpOptions(ctx, m.options, op);
  }
  return exporter;
}

function decodeOtlpOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): NonNullable<TelemetryExporterModel["otlp"]> {
  const otlp: NonNullable<TelemetryExporterModel["otlp"]> = {
    intervalSeconds: 30,
    signals: ["metrics", "logs"],
  };
  const m = readMapping(ctx, value, path, {
    keys: ["interval", "signals", "endpoint", "tls", "credentials"],
    required: ["endpoint"],
    hints: { endpoint: "add endpoint.location, e.g. http://otel-collector:4318" },
  });
  if (!m) return otlp;
  readOptional(
    ctx,
    m,
    path,
    "interval",
    (c, v, p) => readInteger(c, v, p, { min: 1 }),
    otlp,
    "intervalSeconds",
  );
  if (has(m, "signals")) {
    const signals = readListOf(ctx, m.signals, childPath(path, "signals"), (v, p) =>
      readChoice(ctx, v, p, ["metrics", "logs"] as const),
    );
    if (signals) otlp.signals = signals;
  }
  if (has(m, "endpoint")) {
    const ep = childPath(path, "endpoint");
    const e = readMapping(ctx, m.endpoint, ep, {
      keys: ["protocol", "location", "overrides"],
      required: ["location"],
      hints: { location: "add the collector's base URL, e.g. http://otel-collector:4318" },
    });
    if (e) {
      if (has(e, "protocol")) readChoice(ctx, e.protocol, childPath(ep, "protocol"), ["http"]);
      let location: string | undefined;
      if (has(e, "location")) {
        location = readName(ctx, e.location, childPath(ep, "location"));
        if (location !== undefined && !/^https?:\/\//.test(location)) {
          location = report(
            ctx,
            childPath(ep, "location"),
            `"${location}" must be an http:// or https:// URL`,
          );
        }
      }
      let metricsPath = "/v1/metrics";
      let logsPath = "/v1/logs";
      if (has(e, "overrides")) {
        const op = childPath(ep, "overrides");
        const o = readMapping(ctx, e.overrides, op, { keys: ["metrics", "logs"] });
        if (o && has(o, "metrics"))
          metricsPath = readName(ctx, o.metrics, childPath(op, "metrics")) ?? metricsPath;
        if (o && has(o, "logs"))
          logsPath = readName(ctx, o.logs, childPath(op, "logs")) ?? logsPath;
      }
      if (location !== undefined)
        otlp.endpoint = { protocol: "http", location, metricsPath, logsPath };
    }
  }
  if (has(m, "tls")) {
    const tp = childPath(path, "tls");
    const t = readMapping(ctx, m.tls, tp, { keys: ["keys", "trust", "trustcacerts"] });
    if (t) {
      const tls: NonNullable<typeof otlp.tls> = { path: tp };
      if (has(t, "keys")) tls.keys = refs(ctx, t.keys, childPath(tp, "keys")) ?? [];
      if (has(t, "trust")) tls.trust = refs(ctx, t.trust, childPath(tp, "trust")) ?? [];
      readOptional(ctx, t, tp, "trustcacerts", readBoolean, tls, "trustcacerts");
      if (otlp.endpoint?.location.startsWith("http://")) {
        report(
          ctx,
          tp,
          "tls applies only to an https:// endpoint location; remove it or use https://",
        );
      }
      otlp.tls = tls;
    }
  }
  if (has(m, "credentials")) {
    const cp = childPath(path, "credentials");
    const c = readMapping(ctx, m.credentials, cp, { keys: ["headers"] });
    if (c && has(c, "headers")) {
      const hp = childPath(cp, "headers");
      const h = readMapping(ctx, c.headers, hp, { keys: ["authorization"] });
      if (h && has(h, "authorization")) {
        const authorization = readString(ctx, h.authorization, childPath(hp, "authorization"));
        if (authorization !== undefined) otlp.authorization = authorization;
      }
    }
  }
  return otlp;
}
