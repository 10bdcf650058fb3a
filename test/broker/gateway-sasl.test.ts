/**
 * The whole gateway (north + west, kafkajs for admin and its own client for the hot path)
 * against a broker that requires SASL SCRAM-SHA-256 over TLS: a unary call goes through
 * Kafka and back, and every connection the gateway made had to authenticate.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { createSelfSignedCertificate } from "../../src/config/self-signed.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exampleConfig, replyTopic, requestTopic } from "../support/example-config.ts";
import { kafkajsFor } from "../support/kafkajs.ts";

const cert = createSelfSignedCertificate("localhost");
const brokerLog: string[] = [];
let broker: Broker;
let echo: EchoServer;
let gateway: Gateway;

const authenticatedCount = () =>
  brokerLog.filter((l) => l.includes('authenticated "gateway" with SASL SCRAM-SHA-256')).length;

beforeAll(async () => {
  broker = await startBroker({
    tls: cert,
    sasl: { mechanisms: ["SCRAM-SHA-256"], users: { gateway: "g4teway-secret" } },
    log: (line) => brokerLog.push(line),
  });
  broker.createTopic(requestTopic, 2);
  broker.createTopic(replyTopic, 2);
  echo = await startEchoServer();
  const config = exampleConfig(broker.bootstrap, echo.port);
  config.kafka.sasl = {
    mechanism: "scram-sha-256",
    username: "gateway",
    password: "g4teway-secret",
  };
  config.kafka.tls = { ca: [cert.cert] };
  gateway = await startGateway(config, { logger: silentLogger });
});

afterAll(async () => {
  await gateway?.close(1_000);
  await echo?.close();
  await broker?.close();
});

describe("gateway against a SASL_SSL broker", () => {
  it("answers a unary call through Kafka, every connection authenticated", async () => {
    const port = gateway.north[0]?.ports[0] ?? 0;
    const client = createClient(Echo, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const reply = await client.unaryEcho({ message: "through SCRAM over TLS" });
    expect(reply.message).toBe("through SCRAM over TLS");
    // Produce, the reply reader and west's group member each log in on their connections.
    expect(authenticatedCount()).toBeGreaterThanOrEqual(2);
    expect(brokerLog.filter((l) => /Authentication failed|before SASL/.test(l))).toEqual([]);
  });

  it("hands the same SASL and TLS settings to kafkajs (admin requests)", async () => {
    const before = authenticatedCount();
    const admin = kafkajsFor(gateway.kafka).admin();
    try {
      await admin.connect();
      expect(await admin.listTopics()).toEqual(expect.arrayContaining([requestTopic, replyTopic]));
    } finally {
      await admin.disconnect();
    }
    expect(authenticatedCount()).toBeGreaterThan(before);
  });
});
