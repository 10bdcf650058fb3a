/**
 * The gateway's typed configuration: what the zilla.yaml loader produces after it has
 * interpolated, validated and resolved the binding graph. Shapes follow Zilla's
 * `grpc-kafka` proxy and `kafka-grpc` remote_server bindings (routes with `when`/`with`,
 * options), so the loader only translates names.
 */

import type { CompressionCodec } from "../kafka/protocol/compression.ts";
import type { UndecodablePolicy } from "../kafka/undecodable-batches.ts";

/** `acks` as written in config; produce maps none|leader_only|in_sync_replicas → 0|1|-1. */
export type Acks = "none" | "leader_only" | "in_sync_replicas";

/** The header names used for the correlation contract (docs/contract.md: Request records, The correlation id). */
export interface CorrelationHeaders {
  service: string; // default "zilla:service"
  method: string; // default "zilla:method"
  correlationId: string; // default "zilla:correlation-id"
  replyTo: string; // default "zilla:reply-to"
}

export interface TlsClientOptions {
  /** PEM trust anchors; absent = the runtime's default CAs. */
  ca?: string[];
  /** Client certificate and key (PEM), for mutual TLS. */
  cert?: string;
  key?: string;
  sni?: string;
  alpn?: string[];
  /** Accept any server certificate (tests only). */
  insecure?: boolean;
  /** Client certificate and key as a PKCS#12 keystore (a vault's `keys` store), for mutual TLS. */
  pfx?: Uint8Array;
  passphrase?: string;
}

export interface SaslOptions {
  mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  username: string;
  password: string;
}

/** The `kafka` client binding. */
export interface KafkaClientConfig {
  servers: string[]; // "host:port"
  clientId?: string;
  sasl?: SaslOptions;
  tls?: TlsClientOptions;
  /** Codec of the batches the gateway produces (extension `options.compression`; default none). */
  compression?: CompressionCodec;
  /** What a batch that cannot be decoded does (extension `options.undecodable-batches`; default fail). */
  undecodableBatches?: UndecodablePolicy;
  /** Consumer-group timings (extension `options.group`; unset: `defaultKafkaGroupTimings`). */
  group?: KafkaGroupTimings;
  /** The longest a produced record is retried (extension `options.produce.retry-max-ms`; default 60 s). */
  produceRetryMaxMs?: number;
}

/** How a consumer-group member times its membership (docs/kafka-client.md). */
export interface KafkaGroupTimings {
  /** How long the coordinator keeps a member that sends no heartbeat. */
  sessionTimeoutMs?: number;
  /** How often a member sends one (below the session timeout, usually a third of it). */
  heartbeatIntervalMs?: number;
  /** How long the coordinator waits for every member to rejoin in a rebalance. */
  rebalanceTimeoutMs?: number;
  /** How long a member may be joining or rebalancing before /readyz answers 503. */
  unreadyAfterMs?: number;
}

/** The group timings where neither zilla.yaml nor a CLI flag sets them. */
export const defaultKafkaGroupTimings: Required<KafkaGroupTimings> = {
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 60_000,
  unreadyAfterMs: 10_000,
};

/** One listening socket of the north front door (tcp server + optional tls server). */
export interface NorthListener {
  host: string;
  port: number;
  tls?: {
    /** PEM certificate chain and key, or a PKCS#12 keystore with its password. */
    cert?: string;
    key?: string;
    pfx?: Uint8Array;
    passphrase?: string;
    /** Server names accepted (SNI); absent = any. */
    sni?: string[];
    alpn?: string[]; // default ["h2"]
    /** PEM trust anchors for client certificates (the tls server's `trust` aliases). */
    ca?: string[];
    /** Client certificates: asked for and verified (`required`, the default with `ca`), or optional. */
    mutual?: "required" | "requested";
    /** The tls server's `options.authorization`: the x509 guard that reads the client certificate. */
    authorization?: { guard: string };
    /** Lowest TLS version accepted (tls `version`, `--tls-min-version`); default TLSv1.2. */
    minVersion?: TlsVersion;
    /** TLS 1.2 cipher suites, OpenSSL names joined by ":" (`--tls-ciphers`); default `defaultTlsCiphers`. */
    ciphers?: string;
  };
  /** The http server's `options.authorization`: the guard that checks calls and where the token is. */
  authorization?: HttpAuthorization;
}

/** A TLS version as zilla.yaml's tls `version` names it. */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/**
 * TLS 1.2 suites offered by default: forward secrecy (ECDHE) with AEAD ciphers only. TLS 1.3
 * suites are all of that kind and stay as the runtime has them.
 */
export const defaultTlsCiphers = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/**
 * How the front door holds at the edge (docs/limits.md): timeouts and limits per connection
 * and per call, each with a default and a CLI flag. Zilla sets none of these in zilla.yaml.
 */
export interface EdgeLimits {
  /** From accept to the TLS handshake done and the first request's headers read. */
  handshakeTimeoutMs: number;
  /** A connection with no call open for this long is closed (GOAWAY); 0 = never. */
  idleTimeoutMs: number;
  /** An HTTP/2 connection is PINGed this often; 0 = never. */
  keepaliveMs: number;
  /** A PING not answered within this long closes the connection. */
  keepaliveTimeoutMs: number;
  /** A call whose request is still open and that saw no data either way for this long ends; 0 = never. */
  streamIdleTimeoutMs: number;
  /** A reply the client does not take for this long ends its call (RST_STREAM). */
  writeTimeoutMs: number;
  /** Reply bytes a connection may hold that its client has not taken; past it the connection closes. */
  maxWriteBufferBytes: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number;
  /** HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: a larger header list refuses that stream. */
  maxHeaderListBytes: number;
  /** Connections open at once on a north binding's listeners; 0 = from the open-file limit. */
  maxConnections: number;
  /** Streams a client may reset on one connection within 10 s; past it, GOAWAY. */
  maxResets: number;
  /** Bytes of `meta:*` headers (names and values) one request record may carry. */
  maxMetadataBytes: number;
}

/** The edge limits with every default (docs/limits.md says why each). */
export function defaultEdgeLimits(): EdgeLimits {
  return {
    handshakeTimeoutMs: 10_000,
    idleTimeoutMs: 300_000,
    keepaliveMs: 60_000,
    keepaliveTimeoutMs: 20_000,
    streamIdleTimeoutMs: 300_000,
    writeTimeoutMs: 30_000,
    maxWriteBufferBytes: 16 * 1024 * 1024,
    maxConcurrentStreams: 100,
    maxHeaderListBytes: 16 * 1024,
    maxConnections: 0,
    maxResets: 200,
    maxMetadataBytes: 8 * 1024,
  };
}

/** Where a call carries its credentials (Zilla's http `authorization.<guard>.credentials`). */
export interface HttpCredentials {
  /** Header name → pattern with `{credentials}`, e.g. authorization: "Bearer {credentials}". */
  headers?: Record<string, string>;
  /** Query parameter name → pattern, e.g. access_token: "{credentials}". */
  query?: Record<string, string>;
  /** Cookie name → pattern. */
  cookies?: Record<string, string>;
}

export interface HttpAuthorization {
  /** The guard (a jwt guard) that checks the credentials. */
  guard: string;
  credentials: HttpCredentials;
}

/** A jwt guard (zilla.yaml `guards.<name>` with `type: jwt`), defaults filled in. */
export interface JwtGuardConfig {
  type: "jwt";
  name: string;
  issuer: string;
  audience: string;
  /** The claim (dotted path) holding the roles: a space-separated string or a list. */
  roles: string; // default "scope"
  /** The claim naming the caller. */
  identity: string; // default "sub"
  /** Attribute name → claim (dotted path), for `${guarded['<guard>'].attributes.<name>}`. */
  attributes: Record<string, string>;
  /** Seconds before expiry at which a stream is asked to re-authorize (see docs/guards.md). */
  challengeSeconds?: number;
  /** Inline public keys (JWKs); absent = fetched from `keysUrl`. */
  keys?: JwkConfig[];
  /** Where the JWKS is fetched from when no keys are inline (default `<issuer>/.well-known/jwks.json`). */
  keysUrl?: string;
}

/** One inline JSON web key, as written. */
export type JwkConfig = Record<string, unknown> & { kty: string; kid: string };

/** An x509 guard: names the caller after its TLS client certificate. */
export interface X509GuardConfig {
  type: "x509";
  name: string;
  /** The certificate field naming the caller. */
  identity: string; // default "subject.dn"
  attributes: Record<string, string>;
  /** Role → alternatives, each a set of field globs that must all match. */
  roles: Record<string, Array<Record<string, string>>>;
}

export type GuardConfig = JwtGuardConfig | X509GuardConfig;

/** A route's `guarded` entry: the caller needs a session of this guard with all these roles. */
export interface RouteGuard {
  guard: string;
  roles: string[];
}

export interface AccessControl {
  policy: "same-origin" | "cross-origin";
  allow?: {
    origins?: string[];
    methods?: string[];
    headers?: string[];
    credentials?: boolean;
  };
  maxAgeSeconds?: number;
  expose?: { headers?: string[] };
}

/** `grpc-kafka` route `when` item: every given field must match. */
export interface GrpcKafkaWhen {
  /** "package.Service/Method" or "package.Service/*". */
  method?: string;
  /** Request metadata that must be present with exactly this value. */
  metadata?: Record<string, string>;
}

export interface ProduceWith {
  capability: "produce";
  topic: string;
  acks?: Acks; // default in_sync_replicas
  key?: string;
  /** Extra headers, in config order (names are written, values are hashed). */
  overrides?: Record<string, string>;
  /** Reply topic; absent = oneway. */
  replyTo?: string;
}

export interface FetchFilter {
  key?: string;
  headers?: Record<string, string>;
}

export interface FetchWith {
  capability: "fetch";
  topic: string;
  filters?: FetchFilter[];
}

export interface GrpcKafkaRoute {
  /** Any item matching selects the route; an empty list matches everything. */
  when: GrpcKafkaWhen[];
  with: ProduceWith | FetchWith;
  /** Guards whose sessions the caller needs (all of them); absent = open to every caller. */
  guarded?: RouteGuard[];
}

/** A grpc server route with guards: calls of these methods need the guards' sessions. */
export interface MethodGuard {
  /** Method pattern ("pkg.Service/Method" or "pkg.Service/*"); absent = every method. */
  method?: string;
  guarded: RouteGuard[];
}

export interface GrpcKafkaOptions {
  idempotency: { metadata: string }; // default "idempotency-key"
  correlation: { headers: CorrelationHeaders };
  reliability: { field: number; metadata: string }; // default 32767, "last-message-id"
  /** Reply timeout applied when the client sets no deadline (docs/contract.md: difference 7). */
  defaultTimeoutMs: number;
  /** Largest accepted request or reply message, bytes. */
  maxMessageBytes: number;
}

/** The north pipeline: tcp/tls/http/grpc servers in front of one grpc-kafka proxy. */
export interface NorthConfig {
  /** The grpc-kafka binding's name (used in logs and metrics). */
  binding: string;
  listeners: NorthListener[];
  accessControl?: AccessControl;
  /** Full names of the services served (e.g. "grpc.examples.echo.Echo"); must be in gen/. */
  services: string[];
  /** grpc server routes: methods the grpc server forwards at all. Empty = every method of `services`. */
  methods?: string[];
  routes: GrpcKafkaRoute[];
  options: GrpcKafkaOptions;
  /** The guards the listeners and routes use, by name (absent: no guard). */
  guards?: Record<string, GuardConfig>;
  /**
   * The grpc server's routes, when any is guarded: a call needs one route matching its method
   * whose guards it satisfies. Absent: the grpc server lets every served method through.
   */
  methodGuards?: MethodGuard[];
  /** Timeouts and limits of the listeners and calls; absent = `defaultEdgeLimits()`. */
  limits?: EdgeLimits;
}

/** `kafka-grpc` route `when` item. */
export interface KafkaGrpcWhen {
  topic: string;
  replyTo: string;
  key?: string;
  headers?: Record<string, string>;
  /** "package.Service/Method" or "package.Service/*". */
  method?: string;
}

export interface KafkaGrpcRoute {
  when: KafkaGrpcWhen[];
  with: {
    scheme: "http" | "https";
    /** "host:port" of the upstream gRPC server. */
    authority: string;
    tls?: TlsClientOptions;
    /** Where to connect, when the tcp client names a host:port other than `authority`; else `authority`. */
    connect?: { host: string; port: number };
  };
}

export interface KafkaGrpcOptions {
  acks: Acks; // default in_sync_replicas
  idempotency: { metadata: string };
  correlation: { headers: CorrelationHeaders };
  /** How long a finished reply is kept for replay (docs/contract.md: difference 4). */
  idempotencyWindowMs: number;
  /**
   * Where finished calls are recorded (docs/idempotency.md): `kafka`, a changelog topic per
   * request topic that survives crashes and partition moves; `memory`, this process only.
   */
  idempotencyStore: "kafka" | "memory";
  /** Changelog topic per request topic, where set; others get the derived default name. */
  changelogTopics: Record<string, string>;
  /** Largest reply (all its records) copied into the changelog for replay. */
  replayMaxBytes: number;
  /** Largest request message passed on (single-request methods: the whole request). */
  maxMessageBytes: number;
  /** Upstream calls in flight at once; consumption pauses at the bound. */
  maxConcurrentCalls: number;
  retry: { initialBackoffMs: number; maxBackoffMs: number };
  /** Upstream deadline used when a request carries no zilla:deadline. */
  defaultTimeoutMs: number;
}

/** The west pipeline: one kafka-grpc remote_server. */
export interface WestConfig {
  binding: string;
  routes: KafkaGrpcRoute[];
  options: KafkaGrpcOptions;
}

export interface GatewayConfig {
  /** The namespace (zilla.yaml `name`). */
  name: string;
  kafka: KafkaClientConfig;
  north: NorthConfig[];
  west: WestConfig[];
  logLevel?: "debug" | "info" | "warn" | "error";
  /** zilla.yaml `telemetry`, when written. */
  telemetry?: TelemetryConfig;
}

/** zilla.yaml `telemetry`: attributes, metric names and exporters, as written (defaults filled). */
export interface TelemetryConfig {
  attributes: Record<string, string>;
  /** Metric names, e.g. "grpc.duration", "stream.opens.received". */
  metrics: string[];
  exporters: TelemetryExporter[];
  /** Per binding `telemetry.metrics` (names or patterns such as "grpc.*"), by binding name. */
  bindings: Record<string, string[]>;
}

export type TelemetryExporter =
  | { name: string; type: "stdout" }
  | {
      name: string;
      type: "prometheus";
      endpoints: Array<{ scheme: "http"; port: number; path: string }>; // path default "/metrics"
    }
  | {
      name: string;
      type: "otlp";
      intervalSeconds: number; // default 30
      signals: Array<"metrics" | "logs">; // default both
      endpoint: {
        protocol: "http";
        /** Base URL, e.g. "http://otel-collector:4318". */
        location: string;
        metricsPath: string; // default "/v1/metrics"
        logsPath: string; // default "/v1/logs"
      };
      /** `credentials.headers.authorization`, sent as the Authorization header. */
      authorization?: string;
      tls?: TlsClientOptions;
    };

export const defaultCorrelationHeaders: CorrelationHeaders = {
  service: "zilla:service",
  method: "zilla:method",
  correlationId: "zilla:correlation-id",
  replyTo: "zilla:reply-to",
};

/** grpc-kafka options with every default filled in. */
export function defaultGrpcKafkaOptions(): GrpcKafkaOptions {
  return {
    idempotency: { metadata: "idempotency-key" },
    correlation: { headers: { ...defaultCorrelationHeaders } },
    reliability: { field: 32767, metadata: "last-message-id" },
    defaultTimeoutMs: 30_000,
    maxMessageBytes: 4 * 1024 * 1024,
  };
}

/** kafka-grpc options with every default filled in. */
export function defaultKafkaGrpcOptions(): KafkaGrpcOptions {
  return {
    acks: "in_sync_replicas",
    idempotency: { metadata: "idempotency-key" },
    correlation: { headers: { ...defaultCorrelationHeaders } },
    idempotencyWindowMs: 5 * 60_000,
    idempotencyStore: "kafka",
    changelogTopics: {},
    replayMaxBytes: 512 * 1024,
    maxMessageBytes: 4 * 1024 * 1024,
    maxConcurrentCalls: 1024,
    retry: { initialBackoffMs: 50, maxBackoffMs: 2_000 },
    defaultTimeoutMs: 30_000,
  };
}

/** Kafka's numeric acks for a config `acks`. */
export function acksToNumber(acks: Acks | undefined): -1 | 0 | 1 {
  switch (acks) {
    case "none":
      return 0;
    case "leader_only":
      return 1;
    default:
      return -1;
  }
}
