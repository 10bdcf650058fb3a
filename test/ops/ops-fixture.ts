/**
 * A deployment for the ops scenarios: the embedded broker, the echo upstream, and a gateway
 * (west + north, the example topology) started with an ops host (telemetry, readiness, the
 * /healthz /readyz /metrics app on a loopback HTTP port), the way the CLI runs it.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import { vi } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { type Logger, silentLogger } from "../../src/ops/logger.ts";
import { createOpsHost, type OpsHost, type OpsHostOptions } from "../../src/ops/ops-host.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exampleConfig, replyTopic, requestTopic } from "../support/stack.ts";

export interface OpsStack {
  broker: Broker;
  echo: EchoServer;
  gateway: Gateway;
  config: GatewayConfig;
  host: OpsHost;
  /** http://127.0.0.1:PORT of the ops app. */
  opsUrl: string;
  northUrl: string;
  client: Client<typeof Echo>;
  close(): Promise<void>;
}

export interface OpsStackOptions extends OpsHostOptions {
  logger?: Logger;
  partitions?: number;
  configure?: (config: GatewayConfig) => void;
}

/** Serves a Hono app over HTTP/1.1 on an ephemeral loopback port. */
export async function serveApp(app: Hono): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(getRequestListener(app.fetch));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Starts broker, echo, ops host and gateway; `close()` stops them in reverse order. */
export async function startOpsStack(options: OpsStackOptions = {}): Promise<OpsStack> {
  const partitions = options.partitions ?? 2;
  const broker = await startBroker({ port: 0, defaultPartitions: partitions });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  const echo = await startEchoServer();
  const config = exampleConfig(broker.bootstrap, echo.port);
  options.configure?.(config);
  const host = await createOpsHost(config, options);
  const ops = await serveApp(host.app);
  let gateway: Gateway;
  try {
    gateway = await startGateway(config, {
      logger: options.logger ?? silentLogger,
      telemetry: host.telemetry,
      readiness: host.readiness,
    });
  } catch (error) {
    await ops.close();
    await host.close();
    await echo.close();
    await broker.close();
    throw error;
  }
  const northUrl = `http://127.0.0.1:${gateway.north[0]?.ports[0]}`;
  return {
    broker,
    echo,
    gateway,
    config,
    host,
    opsUrl: ops.url,
    northUrl,
    client: createClient(Echo, createGrpcTransport({ baseUrl: northUrl })),
    async close() {
      await gateway.close(1_000);
      await ops.close();
      await host.close();
      await echo.close();
      await broker.close();
    },
  };
}

/** The value of one sample line (`name{labels} value`) of an exposition, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}) {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      have.set(pair[1] as string, pair[2] as string);
    }
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return undefined;
}

/** Polls `check` until it returns true (generous bound for a loaded machine). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error("condition not met in time");
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

/** The methods the yaml's grpc-kafka routes send to Kafka (one route per entry). */
export interface YamlOptions {
  bootstrap: string;
  echoPort: number;
  /** Route `when` methods, e.g. "grpc.examples.echo.Echo/UnaryEcho" (default: Echo/*). */
  routedMethods?: string[];
  /** Text appended at the end (e.g. a telemetry section). */
  extra?: string;
}

const echoProto = fileURLToPath(
  new URL("../../examples/grpc.kafka.proxy/proto/echo.proto", import.meta.url),
);

/** A zilla.yaml like the example's, on a free h2c port, calling the echo upstream. */
export function gatewayYaml(options: YamlOptions): string {
  const routes = (options.routedMethods ?? ["grpc.examples.echo.Echo/*"])
    .map(
      (method) => `      - when:
          - method: ${method}
        exit: north_kafka_cache_client
        with:
          capability: produce
          topic: echo-requests
          acks: leader_only
          reply-to: echo-responses`,
    )
    .join("\n");
  return `name: example
catalogs:
  host_filesystem:
    type: filesystem
    options:
      subjects:
        echo:
          path: ${echoProto}
bindings:
  north_tcp_server:
    type: tcp
    kind: server
    options:
      host: 127.0.0.1
      port: 0
    exit: north_http_server
  north_http_server:
    type: http
    kind: server
    options:
      versions: [h2]
    exit: north_grpc_server
  north_grpc_server:
    type: grpc
    kind: server
    catalog:
      host_filesystem:
        - subject: echo
    routes:
      - when:
          - method: grpc.examples.echo.Echo/*
        exit: north_grpc_kafka_mapping
  north_grpc_kafka_mapping:
    type: grpc-kafka
    kind: proxy
    routes:
${routes}
  north_kafka_cache_client:
    type: kafka
    kind: cache_client
    exit: south_kafka_cache_server
  south_kafka_cache_server:
    type: kafka
    kind: cache_server
    exit: south_kafka_client
  south_kafka_client:
    type: kafka
    kind: client
    options:
      servers:
        - ${options.bootstrap}
    exit: south_tcp_client
  south_tcp_client:
    type: tcp
    kind: client
  west_kafka_grpc_remote_server:
    type: kafka-grpc
    kind: remote_server
    entry: north_kafka_cache_client
    options:
      acks: leader_only
    routes:
      - exit: west_grpc_client
        when:
          - topic: echo-requests
            reply-to: echo-responses
            method: grpc.examples.echo.Echo/*
        with:
          scheme: http
          authority: 127.0.0.1:${options.echoPort}
  west_grpc_client:
    type: grpc
    kind: client
    routes:
      - exit: west_http_client
        when:
          - method: grpc.examples.echo.Echo/*
  west_http_client:
    type: http
    kind: client
    options:
      versions: [h2]
    exit: west_tcp_client
  west_tcp_client:
    type: tcp
    kind: client
    options:
      host: 127.0.0.1
      port: ${options.echoPort}
${options.extra ?? ""}`;
}
