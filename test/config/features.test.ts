/**
 * The zilla.yaml features beyond the example: port ranges, access-control, every grpc-kafka
 * and kafka-grpc option, fetch routes, Kafka SASL and TLS trust, upstream TLS, telemetry
 * exporters, and the problems each can have.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatConfigErrors } from "../../src/config/format-pipelines.ts";
import { parseConfig } from "../../src/config/load-config.ts";
import { createSelfSignedCertificate } from "../../src/config/self-signed.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

const exampleDir = fileURLToPath(new URL("../../examples/grpc.kafka.proxy/", import.meta.url));
let dir: string;
let registry: ServiceRegistry;
let kafkaCa: string;
let upstreamCa: string;

beforeAll(async () => {
  registry = await loadServiceRegistry();
  dir = mkdtempSync(join(tmpdir(), "zilla-config-"));
  copyFileSync(join(exampleDir, "proto/echo.proto"), join(dir, "echo.proto"));
  copyFileSync(join(exampleDir, "tls/localhost.p12"), join(dir, "keys.p12"));
  writeFileSync(
    join(dir, "fanout.proto"),
    'syntax = "proto3";\npackage example;\n// service Commented { }\nservice FanoutService {\n  rpc FanoutServerStream(google.protobuf.Empty) returns (stream FanoutMessage) {}\n}\n',
  );
  kafkaCa = createSelfSignedCertificate("kafka-ca").cert;
  upstreamCa = createSelfSignedCertificate("upstream-ca").cert;
  writeFileSync(join(dir, "trust.pem"), kafkaCa + upstreamCa);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const full = `
name: full
vaults:
  server:
    type: filesystem
    options:
      keys:
        store: keys.p12
        type: pkcs12
        password: zilla-example
  client:
    type: filesystem
    options:
      trust:
        store: trust.pem
        type: pem
catalogs:
  protos:
    type: filesystem
    options:
      subjects:
        echo:
          path: echo.proto
        fanout:
          path: fanout.proto
bindings:
  tcp_server:
    type: tcp
    kind: server
    options:
      host: 127.0.0.1
      port: "9001-9003"
    routes:
      - when:
          - port: 9003
        exit: tls_server
    exit: http_server
  tls_server:
    type: tls
    kind: server
    vault: server
    options:
      keys: [localhost]
    exit: http_server
  http_server:
    type: http
    kind: server
    options:
      versions: [h2, http/1.1]
      access-control:
        policy: cross-origin
        allow:
          origins: [https://app.example.com]
          methods: [POST]
          headers: [content-type, x-grpc-web]
          credentials: true
        max-age: 600
        expose:
          headers: [grpc-status]
    telemetry:
      metrics: [http.*]
    exit: grpc_server
  grpc_server:
    type: grpc
    kind: server
    catalog:
      protos:
        - subject: echo
        - subject: fanout
    exit: grpc_kafka
  grpc_kafka:
    type: grpc-kafka
    kind: proxy
    options:
      idempotency:
        metadata: Request-Key
      reliability:
        field: 99
        metadata: resume-from
      correlation:
        headers:
          service: x:service
          correlation-id: x:cid
    routes:
      - when:
          - method: example.FanoutService/*
            metadata:
              tenant: blue
              trace-bin:
                base64: AAEC
              note:
                base64: aGk=
        exit: kafka_client
        with:
          capability: fetch
          topic: fanout
          filters:
            - key: k1
            - headers:
                colour: blue
      - when:
          - method: grpc.examples.echo.Echo/UnaryEcho
        exit: kafka_client
        with:
          capability: produce
          topic: unary
          acks: none
          key: fixed
          overrides:
            x-team: edge
            x-zone: a
      - when:
          - method: grpc.examples.echo.Echo/*
        exit: kafka_client
        with:
          capability: produce
          topic: requests
          reply-to: replies
  kafka_client:
    type: kafka
    kind: client
    options:
      servers: [broker-1:9093, broker-2:9093]
      sasl:
        mechanism: scram-sha-512
        username: gateway
        password: secret
    exit: kafka_tls
  kafka_tls:
    type: tls
    kind: client
    vault: client
    options:
      trust: [kafka-ca]
      sni: [kafka.internal]
    exit: kafka_tcp
  kafka_tcp:
    type: tcp
    kind: client
  remote:
    type: kafka-grpc
    kind: remote_server
    entry: kafka_client
    options:
      acks: none
      idempotency:
        metadata: request-key
      correlation:
        headers:
          reply-to: x:reply-to
    routes:
      - when:
          - topic: requests
            reply-to: replies
            key: k
            headers:
              x-team: edge
            method: grpc.examples.echo.Echo/UnaryEcho
        exit: grpc_client
        with:
          scheme: https
          authority: echo.internal:443
  grpc_client:
    type: grpc
    kind: client
    exit: http_client
  http_client:
    type: http
    kind: client
    options:
      versions: [h2]
    exit: upstream_tls
  upstream_tls:
    type: tls
    kind: client
    vault: client
    options:
      trust: [upstream-ca]
      trustcacerts: false
      alpn: [h2]
    exit: upstream_tcp
  upstream_tcp:
    type: tcp
    kind: client
    options:
      host: 10.0.0.7
      port: 8443
telemetry:
  attributes:
    service.name: gateway
  metrics:
    - grpc.duration
    - stream.opens.received
  exporters:
    prom:
      type: prometheus
      options:
        endpoints:
          - scheme: http
            port: 9464
    otel:
      type: otlp
      options:
        interval: 10
        signals: [metrics]
        endpoint:
          location: http://collector:4318
          overrides:
            metrics: /m
        credentials:
          headers:
            authorization: Bearer t
`;

async function load(text: string, kafkaServers?: string[]) {
  return parseConfig(text, dir, { registry, env: {}, ...(kafkaServers ? { kafkaServers } : {}) });
}

async function loaded(text: string): Promise<GatewayConfig> {
  const result = await load(text);
  if (!result.ok) throw new Error(formatConfigErrors(result.errors));
  return result.config;
}

async function errorsOf(text: string): Promise<string[]> {
  const result = await load(text);
  if (result.ok) throw new Error("expected the config to be rejected");
  return formatConfigErrors(result.errors).split("\n");
}

function edit(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

describe("a config using every supported feature", () => {
  it("expands a port range and routes each port", async () => {
    const config = await loaded(full);
    const [north] = config.north;
    expect(north?.listeners.map((l) => [l.host, l.port, l.tls ? "tls" : "h2c"])).toEqual([
      ["127.0.0.1", 9001, "h2c"],
      ["127.0.0.1", 9002, "h2c"],
      ["127.0.0.1", 9003, "tls"],
    ]);
    expect(north?.listeners[2]?.tls?.alpn).toEqual(["h2"]);
    expect(north?.listeners[2]?.tls?.pfx?.length).toBeGreaterThan(0);
  });

  it("maps access-control and the services of every catalog subject", async () => {
    const [north] = (await loaded(full)).north;
    expect(north?.accessControl).toEqual({
      policy: "cross-origin",
      allow: {
        origins: ["https://app.example.com"],
        methods: ["POST"],
        headers: ["content-type", "x-grpc-web"],
        credentials: true,
      },
      maxAgeSeconds: 600,
      expose: { headers: ["grpc-status"] },
    });
    expect(north?.services).toEqual(["grpc.examples.echo.Echo", "example.FanoutService"]);
    expect(north?.methods).toBeUndefined();
  });

  it("maps grpc-kafka options, fetch and produce routes", async () => {
    const [north] = (await loaded(full)).north;
    expect(north?.options).toEqual({
      idempotency: { metadata: "request-key" },
      correlation: {
        headers: {
          service: "x:service",
          method: "zilla:method",
          correlationId: "x:cid",
          replyTo: "zilla:reply-to",
        },
      },
      reliability: { field: 99, metadata: "resume-from" },
      defaultTimeoutMs: 30_000,
      maxMessageBytes: 4 * 1024 * 1024,
    });
    expect(north?.routes).toEqual([
      {
        when: [
          {
            method: "example.FanoutService/*",
            metadata: { tenant: "blue", "trace-bin": "AAEC", note: "hi" },
          },
        ],
        with: {
          capability: "fetch",
          topic: "fanout",
          filters: [{ key: "k1" }, { headers: { colour: "blue" } }],
        },
      },
      {
        when: [{ method: "grpc.examples.echo.Echo/UnaryEcho" }],
        with: {
          capability: "produce",
          topic: "unary",
          acks: "none",
          key: "fixed",
          overrides: { "x-team": "edge", "x-zone": "a" },
        },
      },
      {
        when: [{ method: "grpc.examples.echo.Echo/*" }],
        with: {
          capability: "produce",
          topic: "requests",
          acks: "in_sync_replicas",
          replyTo: "replies",
        },
      },
    ]);
  });

  it("maps the kafka client: servers, SASL, and TLS trust chosen by certificate name", async () => {
    const { kafka } = await loaded(full);
    expect(kafka).toEqual({
      servers: ["broker-1:9093", "broker-2:9093"],
      sasl: { mechanism: "scram-sha-512", username: "gateway", password: "secret" },
      tls: { ca: [kafkaCa.trim()], sni: "kafka.internal" },
    });
  });

  it("lets kafkaServers replace the kafka client's servers", async () => {
    const result = await load(full, ["127.0.0.1:19092"]);
    expect(result.ok && result.config.kafka.servers).toEqual(["127.0.0.1:19092"]);
  });

  it("maps the remote server: options, route conditions, TLS upstream and its address", async () => {
    const [west] = (await loaded(full)).west;
    expect(west?.options.acks).toBe("none");
    expect(west?.options.idempotency).toEqual({ metadata: "request-key" });
    expect(west?.options.correlation.headers.replyTo).toBe("x:reply-to");
    expect(west?.routes).toEqual([
      {
        when: [
          {
            topic: "requests",
            replyTo: "replies",
            key: "k",
            headers: { "x-team": "edge" },
            method: "grpc.examples.echo.Echo/UnaryEcho",
          },
        ],
        with: {
          scheme: "https",
          authority: "echo.internal:443",
          tls: { ca: [upstreamCa.trim()], alpn: ["h2"] },
          connect: { host: "10.0.0.7", port: 8443 },
        },
      },
    ]);
  });

  it("exposes telemetry with defaults filled in", async () => {
    const { telemetry } = await loaded(full);
    expect(telemetry).toEqual({
      attributes: { "service.name": "gateway" },
      metrics: ["grpc.duration", "stream.opens.received"],
      exporters: [
        {
          name: "prom",
          type: "prometheus",
          endpoints: [{ scheme: "http", port: 9464, path: "/metrics" }],
        },
        {
          name: "otel",
          type: "otlp",
          intervalSeconds: 10,
          signals: ["metrics"],
          endpoint: {
            protocol: "http",
            location: "http://collector:4318",
            metricsPath: "/m",
            logsPath: "/v1/logs",
          },
          authorization: "Bearer t",
        },
      ],
      bindings: { http_server: ["http.*"] },
    });
  });
});

describe("problems in the features", () => {
  it("reports a tcp route port that the server does not listen on", async () => {
    const text = edit(full, "          - port: 9003\n", "          - port: 9004\n");
    expect(await errorsOf(text)).toEqual([
      "bindings.tcp_server.routes[0].when: port 9004 is not one of this server's ports (9001, 9002, 9003); add it to options.port or fix the route",
    ]);
  });

  it("reports a bad port value once, not again for the routes that name its ports", async () => {
    const text = edit(full, '      port: "9001-9003"\n', '      port: "9001-90o3"\n');
    const errors = await errorsOf(text);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^bindings\.tcp_server\.options\.port: .*"9001-90o3"/);
  });

  it("reports a port with no route and no exit", async () => {
    const text = edit(
      full,
      "        exit: tls_server\n    exit: http_server\n",
      "        exit: tls_server\n",
    );
    expect(await errorsOf(text)).toEqual([
      "bindings.tcp_server.options.port: port 9001 has no route; add a route with when: [{ port: 9001 }] and an exit, or an exit on the binding",
      "bindings.tcp_server.options.port: port 9002 has no route; add a route with when: [{ port: 9002 }] and an exit, or an exit on the binding",
    ]);
  });

  it("reports an exit to a binding of the wrong kind", async () => {
    const text = edit(full, "    exit: grpc_server\n", "    exit: kafka_tcp\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.http_server.exit: "kafka_tcp" is a tcp client; an http server must lead to a grpc server here',
    ]);
  });

  it("reports a route method whose service the grpc server does not serve", async () => {
    const text = edit(full, "        - subject: fanout\n", "");
    expect(await errorsOf(text)).toEqual([
      'bindings.grpc_kafka.routes[0].when[0].method: "example.FanoutService/*" is not served: grpc server "grpc_server" serves grpc.examples.echo.Echo; add the service\'s proto to its catalog, or fix the name',
    ]);
  });

  it("reports a key alias the keystore does not hold", async () => {
    const text = edit(full, "      keys: [localhost]\n", "      keys: [gateway]\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.tls_server.options.keys[0]: keystore "keys.p12" has no key "gateway" (its aliases: localhost); fix the alias',
    ]);
  });

  it("reports a trust alias the PEM trust store does not hold", async () => {
    const text = edit(full, "      trust: [kafka-ca]\n", "      trust: [kafka-root]\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.kafka_tls.options.trust[0]: trust store "trust.pem" has no certificate with common name "kafka-root" (it has: kafka-ca, upstream-ca); fix the alias',
    ]);
  });

  it("reports JKS and PKCS#12 trust stores with the command that converts them", async () => {
    let text = edit(full, "        type: pkcs12\n", "        type: jks\n");
    text = edit(
      text,
      "        store: trust.pem\n        type: pem\n",
      "        store: trust.p12\n        type: pkcs12\n",
    );
    expect(await errorsOf(text)).toEqual([
      'vaults.server.options.keys.type: JKS stores are not supported by this gateway; convert it with "keytool -importkeystore -srckeystore keys.p12 -destkeystore store.p12 -deststoretype pkcs12" and use type: pkcs12',
      'vaults.client.options.trust.type: a PKCS#12 trust store is not supported; export its certificates with "openssl pkcs12 -in trust.p12 -nokeys -out trust.pem" and use type: pem',
    ]);
  });

  it("reports scheme https without a tls client, and gRPC without HTTP/2", async () => {
    let text = edit(full, "    exit: upstream_tls\n", "    exit: upstream_tcp\n");
    text = edit(text, "      versions: [h2, http/1.1]\n", "      versions: [http/1.1]\n");
    expect(await errorsOf(text)).toEqual([
      "bindings.http_server.options.versions: gRPC needs HTTP/2; add h2 to versions",
      "bindings.remote.routes[0].with.scheme: scheme https needs a tls client between the http client and the tcp client; add one, or use scheme: http",
    ]);
  });

  it("reports guarded routes whose guard nothing checks, and unknown guards", async () => {
    let text = edit(
      full,
      "        exit: kafka_client\n        with:\n          capability: fetch\n",
      "        exit: kafka_client\n        guarded:\n          jwt0: [read]\n          jwt1: [read]\n        with:\n          capability: fetch\n",
    );
    text = edit(
      text,
      "bindings:\n",
      "guards:\n  jwt0:\n    type: jwt\n    options:\n      issuer: https://auth.example.com\n      audience: https://api.example.com\n      keys: https://auth.example.com/jwks\nbindings:\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.grpc_kafka.routes[0].guarded.jwt0: guard "jwt0" checks no call on the way here: name it under options.authorization of the http server (jwt) or the tls server (x509) in front of this proxy, or remove it',
      'bindings.grpc_kafka.routes[0].guarded.jwt1: no guard is named "jwt1"; did you mean "jwt0"?',
    ]);
  });

  it("reports Zilla options this gateway does not support, saying what to do", async () => {
    let text = edit(
      full,
      "          - port: 9003\n",
      "          - port: 9003\n            cidr: 10.0.0.0/8\n",
    );
    text = edit(
      text,
      "    kind: remote_server\n",
      "    kind: remote_server\n    exit: grpc_client\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.tcp_server.routes[0].when[0].cidr: routing by "cidr" is not supported by this gateway; remove it (and filter addresses in front of the gateway)',
      'bindings.remote.exit: a kafka-grpc remote_server takes "exit" on each route, not on the binding; move it',
    ]);
  });

  it("reports a port served by two tcp servers", async () => {
    const text = edit(
      full,
      "  tls_server:\n",
      "  tcp_server2:\n    type: tcp\n    kind: server\n    options:\n      port: 9002\n    exit: http_server\n  tls_server:\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.tcp_server2.options.port: port 9002 is also a port of tcp server "tcp_server"; give each port to one tcp server',
    ]);
  });

  it("takes the methods a grpc server forwards from its routes", async () => {
    const text = edit(
      full,
      "    exit: grpc_kafka\n",
      "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/*\n          - method: example.FanoutService/FanoutServerStream\n        exit: grpc_kafka\n",
    );
    expect((await loaded(text)).north[0]?.methods).toEqual([
      "grpc.examples.echo.Echo/*",
      "example.FanoutService/FanoutServerStream",
    ]);
  });

  it("reports a grpc-kafka proxy that no listener reaches, and a chain of the wrong kinds", async () => {
    const lonely = edit(
      full,
      "  kafka_client:\n",
      "  lonely:\n    type: grpc-kafka\n    kind: proxy\n    routes:\n      - exit: kafka_client\n        with:\n          capability: produce\n          topic: t\n  kafka_client:\n",
    );
    expect(await errorsOf(lonely)).toEqual([
      "bindings.lonely: no tcp server leads to this grpc-kafka proxy (tcp server → http server → grpc server → here); add that chain or remove the proxy",
    ]);
    const wrongKind = edit(
      full,
      "  http_server:\n    type: http\n    kind: server\n",
      "  http_server:\n    type: http\n    kind: client\n",
    );
    expect(await errorsOf(wrongKind)).toEqual([
      'bindings.tcp_server.exit: "http_server" is an http client; a tcp server must lead to a tls server or an http server here',
      'bindings.tls_server.exit: "http_server" is an http client; a tls server must lead to an http server here',
      'bindings.http_server.options.access-control: an http client takes no "access-control"; remove it',
    ]);
  });

  it("reports an otlp exporter's trust alias at its own path", async () => {
    let text = edit(
      full,
      "          location: http://collector:4318\n",
      "          location: https://collector:4318\n",
    );
    text = edit(
      text,
      "        credentials:\n",
      "        tls:\n          trust: [collector-ca]\n        credentials:\n",
    );
    text = edit(text, "      type: otlp\n", "      type: otlp\n      vault: client\n");
    expect(await errorsOf(text)).toEqual([
      'telemetry.exporters.otel.options.tls.trust[0]: trust store "trust.pem" has no certificate with common name "collector-ca" (it has: kafka-ca, upstream-ca); fix the alias',
    ]);
  });

  it("reports two Kafka clusters", async () => {
    let text = edit(full, "    entry: kafka_client\n", "    entry: other_kafka\n");
    text = edit(
      text,
      "  grpc_client:\n",
      "  other_kafka:\n    type: kafka\n    kind: client\n    options:\n      servers: [other:9092]\n    exit: kafka_tcp\n  grpc_client:\n",
    );
    expect(await errorsOf(text)).toEqual([
      "bindings: the kafka clients kafka_client, other_kafka are all used; this gateway connects to one Kafka cluster, so lead every chain to one kafka client",
    ]);
  });
});
