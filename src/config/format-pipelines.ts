/**
 * What `gateway validate` prints: the resolved pipelines in a few lines a person can check
 * against their zilla.yaml, or the errors, one line each.
 */
import type { ConfigError } from "./config-error.ts";
import type {
  GatewayConfig,
  GrpcKafkaRoute,
  GuardConfig,
  KafkaGrpcRoute,
  NorthListener,
  RouteGuard,
} from "./types.ts";

/** A readable summary of listeners, services, routes, upstreams and Kafka servers. */
export function formatPipelines(config: GatewayConfig): string {
  const lines: string[] = [`namespace ${config.name}`];
  const { kafka } = config;
  const kafkaExtras = [
    kafka.sasl ? `sasl ${kafka.sasl.mechanism} as ${kafka.sasl.username}` : undefined,
    kafka.tls ? "tls" : undefined,
  ].filter(Boolean);
  lines.push(
    `kafka ${kafka.servers.join(", ")}${kafkaExtras.length ? ` (${kafkaExtras.join(", ")})` : ""}`,
  );
  for (const north of config.north) {
    lines.push("", `north ${north.binding}`);
    for (const listener of north.listeners) lines.push(`  listen ${formatListener(listener)}`);
    const methods = north.methods?.length ? ` (methods ${north.methods.join(", ")})` : "";
    lines.push(`  services ${north.services.join(", ") || "(none)"}${methods}`);
    if (north.accessControl) {
      const origins = north.accessControl.allow?.origins;
      lines.push(
        `  access-control ${north.accessControl.policy}${origins ? ` (origins ${origins.join(", ")})` : ""}`,
      );
    }
    for (const guard of Object.values(north.guards ?? {}))
      lines.push(`  guard ${formatGuard(guard)}`);
    for (const m of north.methodGuards ?? []) {
      lines.push(`  grpc ${m.method ?? "*"} guarded ${formatGuarded(m.guarded)}`);
    }
    for (const route of north.routes) lines.push(`  route ${formatNorthRoute(route)}`);
    const o = north.options;
    const h = o.correlation.headers;
    if (
      h.service !== "zilla:service" ||
      h.method !== "zilla:method" ||
      h.correlationId !== "zilla:correlation-id" ||
      h.replyTo !== "zilla:reply-to"
    ) {
      lines.push(
        `  correlation headers ${h.service}, ${h.method}, ${h.correlationId}, ${h.replyTo}`,
      );
    }
    lines.push(`  idempotency metadata ${o.idempotency.metadata}`);
  }
  for (const west of config.west) {
    lines.push(
      "",
      `west ${west.binding} (consumer group zilla:${config.name}-${west.binding}, acks ${west.options.acks})`,
    );
    for (const route of west.routes) lines.push(`  route ${formatWestRoute(route)}`);
  }
  const telemetry = config.telemetry;
  if (telemetry) {
    const exporters = telemetry.exporters.map((e) => {
      if (e.type === "prometheus") {
        return `${e.name} (prometheus ${e.endpoints.map((p) => `:${p.port}${p.path}`).join(", ")})`;
      }
      if (e.type === "otlp") return `${e.name} (otlp ${e.endpoint.location})`;
      return `${e.name} (${e.type})`;
    });
    lines.push(
      "",
      `telemetry exporters ${exporters.join(", ") || "(none)"}${telemetry.metrics.length ? `; metrics ${telemetry.metrics.join(", ")}` : ""}`,
    );
  }
  return lines.join("\n");
}

/** One line per error: `path: message`. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  return errors
    .map((e) => `${e.path || `line ${e.line ?? 1}:${e.column ?? 1}`}: ${e.message}`)
    .join("\n");
}

function formatListener(l: NorthListener): string {
  const address = `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}`;
  const authorization = l.authorization
    ? `, authorization ${l.authorization.guard} (${[
        ...Object.entries(l.authorization.credentials.headers ?? {}).map(
          ([n, p]) => `header ${n}: ${p}`,
        ),
        ...Object.keys(l.authorization.credentials.query ?? {}).map((n) => `query ${n}`),
        ...Object.keys(l.authorization.credentials.cookies ?? {}).map((n) => `cookie ${n}`),
      ].join(", ")})`
    : "";
  if (!l.tls) return `${address} h2c${authorization}`;
  const details = [
    `alpn ${(l.tls.alpn ?? ["h2"]).join(",")}`,
    l.tls.sni ? `sni ${l.tls.sni.join(",")}` : undefined,
    l.tls.pfx ? "pkcs12 keystore" : l.tls.cert ? "pem certificate" : undefined,
    l.tls.mutual
      ? `client certificates ${l.tls.mutual} (${l.tls.ca?.length ?? 0} CA)${l.tls.authorization ? ` → guard ${l.tls.authorization.guard}` : ""}`
      : undefined,
  ].filter(Boolean);
  return `${address} tls (${details.join(", ")})${authorization}`;
}

function formatGuard(g: GuardConfig): string {
  if (g.type === "x509") {
    const roles = Object.keys(g.roles);
    return `${g.name} x509 (identity ${g.identity}${roles.length ? `, roles ${roles.join(", ")}` : ""})`;
  }
  const keys = g.keys ? `${g.keys.length} inline key(s)` : `keys ${g.keysUrl}`;
  const challenge = g.challengeSeconds !== undefined ? `, challenge ${g.challengeSeconds} s` : "";
  return `${g.name} jwt (issuer ${g.issuer}, audience ${g.audience}, ${keys}, identity ${g.identity}, roles ${g.roles}${challenge})`;
}

function formatGuarded(guarded: readonly RouteGuard[]): string {
  return guarded.map((g) => `${g.guard} [${g.roles.join(", ")}]`).join(" ");
}

function formatNorthRoute(route: GrpcKafkaRoute): string {
  const when =
    route.when.length === 0
      ? "*"
      : route.when
          .map((w) => {
            const metadata = w.metadata
              ? ` [${Object.entries(w.metadata)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(", ")}]`
              : "";
            return `${w.method ?? "*"}${metadata}`;
          })
          .join(" | ");
  const w = route.with;
  if (w.capability === "fetch") {
    const filters = w.filters?.length ? ` (${w.filters.length} filter(s))` : "";
    const guarded = route.guarded?.length ? ` guarded ${formatGuarded(route.guarded)}` : "";
    return `${when}${guarded} → fetch ${w.topic}${filters}`;
  }
  const details = [
    `acks ${w.acks ?? "in_sync_replicas"}`,
    w.replyTo ? `reply-to ${w.replyTo}` : "oneway",
    w.key !== undefined ? `key ${w.key}` : undefined,
    w.overrides && Object.keys(w.overrides).length
      ? `overrides ${Object.keys(w.overrides).join(", ")}`
      : undefined,
  ].filter(Boolean);
  const guarded = route.guarded?.length ? ` guarded ${formatGuarded(route.guarded)}` : "";
  return `${when}${guarded} → produce ${w.topic} (${details.join(", ")})`;
}

function formatWestRoute(route: KafkaGrpcRoute): string {
  const when = route.when
    .map((w) => {
      const extras = [
        `reply-to ${w.replyTo}`,
        w.method ? `method ${w.method}` : undefined,
        w.key !== undefined ? `key ${w.key}` : undefined,
        w.headers ? `headers ${Object.keys(w.headers).join(", ")}` : undefined,
      ].filter(Boolean);
      return `${w.topic} (${extras.join(", ")})`;
    })
    .join(" | ");
  const connect = route.with.connect
    ? ` via ${route.with.connect.host}:${route.with.connect.port}`
    : "";
  return `${when} → ${route.with.scheme}://${route.with.authority}${connect}`;
}
