/**
 * The gateway's own Kafka client against a broker that requires SASL and serves TLS:
 * produce and read back with every mechanism, over SASL_PLAINTEXT, SSL and SASL_SSL; wrong
 * credentials and untrusted certificates fail at once with errors that say why.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../broker/broker.ts";
import { createSelfSignedCertificate } from "../../config/self-signed.ts";
import type { SaslOptions, TlsClientOptions } from "../../config/types.ts";
import { KafkaConnectionError, KafkaProtocolError } from "../protocol/errors.ts";
import { type FetchedRecord, utf8 } from "../protocol/record-codec.ts";
import { KafkaCluster } from "./kafka-cluster.ts";
import { startPartitionReader } from "./partition-reader.ts";
import { testSettings, waitFor } from "./wire-test-kit.ts";

const USERS = { alice: "wonderland", gateway: "p@ss,w=rd" };
const cert = createSelfSignedCertificate("localhost");
const trusted: TlsClientOptions = { ca: [cert.cert] };

let saslBroker: Broker;
let saslTlsBroker: Broker;
let tlsBroker: Broker;
let openBroker: Broker;
const saslLog: string[] = [];
const clusters: KafkaCluster[] = [];

beforeAll(async () => {
  saslBroker = await startBroker({
    sasl: { mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], users: USERS },
    log: (line) => saslLog.push(line),
  });
  saslTlsBroker = await startBroker({
    tls: cert,
    sasl: { mechanisms: ["SCRAM-SHA-256", "SCRAM-SHA-512"], users: USERS },
  });
  tlsBroker = await startBroker({ tls: cert });
  openBroker = await startBroker();
});

afterAll(async () => {
  for (const cluster of clusters) cluster.close();
  await Promise.all([saslBroker, saslTlsBroker, tlsBroker, openBroker].map((b) => b?.close()));
});

function clusterFor(
  broker: Broker,
  auth: { sasl?: SaslOptions; tls?: TlsClientOptions },
  overrides: Parameters<typeof testSettings>[1] = {},
): KafkaCluster {
  const cluster = new KafkaCluster(testSettings(broker.bootstrap, { ...auth, ...overrides }));
  clusters.push(cluster);
  return cluster;
}

/** Produces `values` to `topic` (one partition) and reads them back from the beginning. */
async function roundTrip(
  cluster: KafkaCluster,
  topic: string,
  values: string[],
): Promise<string[]> {
  const enc = new TextEncoder();
  await cluster.produce(
    -1,
    10_000,
    new Map([[topic, values.map((v) => ({ key: "k", value: enc.encode(v), headers: [] }))]]),
  );
  const received: FetchedRecord[] = [];
  const reader = await startPartitionReader({
    cluster,
    topics: [topic],
    start: "earliest",
    maxWaitMs: 200,
    partitionMaxBytes: 1 << 20,
    maxBytes: 1 << 20,
    onRecords: (_topic, _partition, records) => {
      received.push(...records);
    },
  });
  try {
    await waitFor(() => received.length >= values.length, `${values.length} records of ${topic}`);
  } finally {
    reader.stop();
  }
  return received.map((r) => (r.value === null ? "<null>" : utf8(r.value)));
}

describe("SASL_PLAINTEXT", () => {
  for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
    it(`produces and reads back after authenticating with ${mechanism}`, async () => {
      const topic = `wire-auth-${mechanism}`;
      saslBroker.createTopic(topic, 1);
      const cluster = clusterFor(saslBroker, {
        sasl: { mechanism, username: "gateway", password: USERS.gateway },
      });
      expect(await roundTrip(cluster, topic, ["one", "two", "three"])).toEqual([
        "one",
        "two",
        "three",
      ]);
      const name = mechanism.toUpperCase();
      expect(saslLog.some((l) => l.includes(`authenticated "gateway" with SASL ${name}`))).toBe(
        true,
      );
    });
  }

  it("fails a wrong password at once, saying SASL authentication failed, without retrying", async () => {
    for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
      const failuresBefore = saslLog.filter((l) => l.includes("Authentication failed")).length;
      // Retries would go on for a minute: failing well inside that shows there were none.
      const cluster = clusterFor(
        saslBroker,
        { sasl: { mechanism, username: "alice", password: "guess" } },
        { retryTimeoutMs: 60_000, requestTimeoutMs: 60_000 },
      );
      const started = Date.now();
      const error = await cluster.produce(-1, 60_000, new Map([["wire-auth-refused", []]])).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(error).toBeInstanceOf(KafkaProtocolError);
      expect((error as KafkaProtocolError).code).toBe(58);
      expect((error as Error).message).toMatch(
        new RegExp(`SASL ${mechanism.toUpperCase()} authentication failed: Authentication failed`),
      );
      const failuresAfter = saslLog.filter((l) => l.includes("Authentication failed")).length;
      expect(failuresAfter - failuresBefore).toBe(1);
    }
  });

  it("names the mechanisms on offer when asked for one the broker lacks", async () => {
    const cluster = clusterFor(saslTlsBroker, {
      tls: trusted,
      sasl: { mechanism: "plain", username: "gateway", password: USERS.gateway },
    });
    const error = await cluster.connect().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(KafkaProtocolError);
    expect((error as KafkaProtocolError).code).toBe(33);
    expect((error as Error).message).toMatch(
      /SASL mechanism PLAIN refused \(the broker offers SCRAM-SHA-256, SCRAM-SHA-512\)/,
    );
  });

  it("says so when SASL is configured but the broker does not speak it", async () => {
    const cluster = clusterFor(openBroker, {
      sasl: { mechanism: "scram-sha-256", username: "gateway", password: USERS.gateway },
    });
    const error = await cluster.connect().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(KafkaProtocolError);
    expect((error as KafkaProtocolError).code).toBe(35);
    expect((error as Error).message).toMatch(/SASL is configured but the broker does not offer it/);
  });
});

describe("TLS", () => {
  it("produces and reads back over SASL_SSL with scram-sha-512", async () => {
    const topic = "wire-auth-sasl-ssl";
    saslTlsBroker.createTopic(topic, 1);
    const cluster = clusterFor(saslTlsBroker, {
      tls: trusted,
      sasl: { mechanism: "scram-sha-512", username: "alice", password: USERS.alice },
    });
    expect(await roundTrip(cluster, topic, ["secret"])).toEqual(["secret"]);
  });

  it("produces and reads back over SSL, trusting the certificate", async () => {
    const topic = "wire-auth-ssl";
    tlsBroker.createTopic(topic, 1);
    const cluster = clusterFor(tlsBroker, { tls: trusted });
    expect(await roundTrip(cluster, topic, ["a", "b"])).toEqual(["a", "b"]);
  });

  it("refuses an untrusted certificate with the reason, unless insecure", async () => {
    const refused = clusterFor(tlsBroker, { tls: {} });
    const error = await refused.connect().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(KafkaConnectionError);
    expect((error as Error).message).toMatch(/self[- ]signed certificate/);
    const topic = "wire-auth-insecure";
    tlsBroker.createTopic(topic, 1);
    const insecure = clusterFor(tlsBroker, { tls: { insecure: true } });
    expect(await roundTrip(insecure, topic, ["anyway"])).toEqual(["anyway"]);
  });
});
