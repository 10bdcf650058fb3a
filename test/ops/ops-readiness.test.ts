/**
 * Readiness: /readyz answers 503 while the gateway starts (its reply reader is not positioned
 * and its consumer group not assigned while the broker is paused), 200 once it is, 503 again
 * while Kafka does not answer and while it shuts down; /healthz is 200 throughout. gRPC
 * health (grpc.health.v1 on the north port) follows the same state.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { createOpsHost, type OpsHost } from "../../src/ops/ops-host.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exampleConfig, replyTopic, requestTopic } from "../support/stack.ts";
import { eventually, serveApp } from "./ops-fixture.ts";

let broker: Broker;
let echo: EchoServer;
let host: OpsHost;
let ops: Awaited<ReturnType<typeof serveApp>>;
let gateway: Gateway | undefined;

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: 2 });
  broker.createTopic(requestTopic, 2);
  broker.createTopic(replyTopic, 2);
  echo = await startEchoServer();
});

afterAll(async () => {
  broker?.faults.resume();
  await gateway?.close(0);
  await ops?.close();
  await host?.close();
  await echo?.close();
  await broker?.close();
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`${ops.url}${path}`);
  return { status: response.status, body: await response.text() };
}

test("readyz.follows.start.kafka.and.shutdown", { timeout: 60_000 }, async () => {
  const config = exampleConfig(broker.bootstrap, echo.port);
  host = await createOpsHost(config, { cacheMs: 0, probeTimeoutMs: 1_000 });
  ops = await serveApp(host.app);

  broker.faults.pause();
  const starting = startGateway(config, {
    logger: silentLogger,
    telemetry: host.telemetry,
    readiness: host.readiness,
  });
  starting.catch(() => {});
  expect(await get("/healthz")).toEqual({ status: 200, body: "ok\n" });
  const notYet = await get("/readyz");
  expect(notYet.status).toBe(503);
  expect(notYet.body.split("\n")).toEqual([
    "not ready",
    "west west_kafka_grpc_remote_server consumer group: starting",
    "north north_grpc_kafka_mapping reply reader: starting",
    "",
  ]);
  // Nothing happens for 500 ms: still paused, nothing can be positioned, still not ready.
  await new Promise((r) => setTimeout(r, 500));
  expect((await get("/readyz")).status).toBe(503);

  broker.faults.resume();
  gateway = await starting;
  expect(await get("/readyz")).toEqual({ status: 200, body: "ready\n" });

  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${gateway.north[0]?.ports[0]}` }),
  );
  expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
  expect((await health.check({ service: "grpc.examples.echo.Echo" })).status).toBe(
    ServingStatus.SERVING,
  );

  // Kafka stops answering: not ready (the probe gives up after 1 s), and gRPC health agrees.
  broker.faults.pause();
  const unreachable = await get("/readyz");
  expect(unreachable.status).toBe(503);
  expect(unreachable.body).toContain("kafka: no answer within 1000 ms");
  expect((await health.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
  broker.faults.resume();
  await eventually(async () => (await get("/readyz")).status === 200);
  expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);

  // Shutting down: not ready from the first moment, while calls drain.
  const slow = createClient(
    Echo,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${gateway.north[0]?.ports[0]}` }),
  ).unaryEcho({ message: "delay:1000:draining" });
  await eventually(() => echo.requests.some((r) => r.messages.includes("delay:1000:draining")));
  const closing = gateway.close(10_000);
  expect(await get("/readyz")).toEqual({ status: 503, body: "not ready\nshutting down\n" });
  expect((await slow).message).toBe("delay:1000:draining");
  await closing;
  expect((await get("/readyz")).status).toBe(503);
  expect((await get("/healthz")).status).toBe(200);
});
