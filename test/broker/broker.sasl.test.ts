/**
 * The embedded broker requiring SASL and serving TLS, refereed by independent clients:
 * kcat (Debian's librdkafka 2.0) and kafkajs 2.2.4, each over SASL_PLAINTEXT, SSL and
 * SASL_SSL, with every mechanism the broker offers, and wrong credentials refused.
 * Needs `kcat` on the PATH (`apt-get install -y kcat`).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { createSelfSignedCertificate } from "../../src/config/self-signed.ts";

const KCAT_TIMEOUT_MS = 20_000;
const USERS = { alice: "wonderland", "svc-gateway": "s3cr3t,with=odd chars" };
const MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] as const;

interface KcatResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kcat; resolves with its exit code and output whether it succeeded or not. */
function kcat(args: string[], input?: string): Promise<KcatResult> {
  return new Promise((resolve) => {
    const child = execFile(
      "kcat",
      args,
      { timeout: KCAT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? "");
  });
}

/** kcat, failing the test with its stderr when it does not exit 0. */
async function kcatOk(args: string[], input?: string): Promise<string> {
  const result = await kcat(args, input);
  if (result.code !== 0) {
    throw new Error(`kcat ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  }
  return result.stdout;
}

const cert = createSelfSignedCertificate("localhost");
let pemDir: string;
let caFile: string;
let saslBroker: Broker;
const saslLog: string[] = [];
let tlsBroker: Broker;
let saslTlsBroker: Broker;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pemDir = mkdtempSync(join(tmpdir(), "broker-sasl-"));
  caFile = join(pemDir, "ca.pem");
  writeFileSync(caFile, cert.cert);
  saslBroker = await startBroker({
    sasl: { mechanisms: [...MECHANISMS], users: USERS },
    log: (line) => saslLog.push(line),
  });
  tlsBroker = await startBroker({ tls: cert });
  saslTlsBroker = await startBroker({
    tls: cert,
    sasl: { mechanisms: ["PLAIN", "SCRAM-SHA-512"], users: USERS },
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await saslBroker?.close();
  await tlsBroker?.close();
  await saslTlsBroker?.close();
  if (pemDir) rmSync(pemDir, { recursive: true, force: true });
});

/** librdkafka settings for a SASL login. */
function saslArgs(mechanism: string, username: string, password: string): string[] {
  return [
    "-X",
    `sasl.mechanisms=${mechanism}`,
    "-X",
    `sasl.username=${username}`,
    "-X",
    `sasl.password=${password}`,
  ];
}

describe("kcat over SASL_PLAINTEXT", () => {
  for (const mechanism of MECHANISMS) {
    it(`lists metadata after authenticating with ${mechanism}`, async () => {
      saslBroker.createTopic(`listed-${mechanism.toLowerCase()}`, 2);
      const stdout = await kcatOk([
        "-b",
        saslBroker.bootstrap,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        ...saslArgs(mechanism, "svc-gateway", USERS["svc-gateway"]),
        "-L",
      ]);
      expect(stdout).toContain(`broker 1 at 127.0.0.1:${saslBroker.port} (controller)`);
      expect(stdout).toContain(`topic "listed-${mechanism.toLowerCase()}" with 2 partitions:`);
    });
  }

  it("fails with a wrong password, saying authentication failed", async () => {
    for (const mechanism of ["PLAIN", "SCRAM-SHA-256"]) {
      const result = await kcat([
        "-b",
        saslBroker.bootstrap,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        ...saslArgs(mechanism, "alice", "not-the-password"),
        "-m",
        "3",
        "-L",
      ]);
      expect(result.code).not.toBe(0);
      expect(result.stdout).not.toContain("broker 1 at");
      expect(result.stderr).toMatch(
        new RegExp(`SASL authentication error: Authentication failed.*${mechanism}`),
      );
    }
  });

  it("fails without SASL: the broker closes the connection instead of answering", async () => {
    const before = saslLog.filter((l) => l.includes("before SASL authentication")).length;
    const result = await kcat(["-b", saslBroker.bootstrap, "-m", "3", "-L"]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain("broker 1 at");
    // ApiVersions is answered; the Metadata request after it is not.
    const refused = saslLog.filter((l) =>
      l.includes("request for API 3 before SASL authentication"),
    );
    expect(refused.length).toBeGreaterThan(before);
  });

  it("produces with -P and reads back with -C -e (SCRAM-SHA-256)", async () => {
    const topic = "kcat-sasl-round-trip";
    saslBroker.createTopic(topic, 1);
    const login = [
      "-X",
      "security.protocol=SASL_PLAINTEXT",
      ...saslArgs("SCRAM-SHA-256", "alice", USERS.alice),
    ];
    await kcatOk(
      ["-b", saslBroker.bootstrap, ...login, "-P", "-t", topic, "-K:"],
      "k1:one\nk2:two\n",
    );
    const stdout = await kcatOk([
      "-b",
      saslBroker.bootstrap,
      ...login,
      "-C",
      "-t",
      topic,
      "-o",
      "beginning",
      "-e",
      "-f",
      "%k=%s@%o\\n",
    ]);
    expect(stdout.trim().split("\n")).toEqual(["k1=one@0", "k2=two@1"]);
  });
});

describe("kcat over TLS", () => {
  it("lists metadata over SSL, trusting the broker's certificate as CA", async () => {
    const stdout = await kcatOk([
      "-b",
      tlsBroker.bootstrap,
      "-X",
      "security.protocol=SSL",
      "-X",
      `ssl.ca.location=${caFile}`,
      "-L",
    ]);
    expect(stdout).toContain(`(from broker 1: ssl://127.0.0.1:${tlsBroker.port}/1)`);
    expect(stdout).toContain(`broker 1 at 127.0.0.1:${tlsBroker.port} (controller)`);
  });

  it("lists metadata over SSL with certificate verification off", async () => {
    const stdout = await kcatOk([
      "-b",
      tlsBroker.bootstrap,
      "-X",
      "security.protocol=SSL",
      "-X",
      "enable.ssl.certificate.verification=false",
      "-L",
    ]);
    expect(stdout).toContain(`broker 1 at 127.0.0.1:${tlsBroker.port} (controller)`);
  });

  it("refuses the self-signed certificate without the CA", async () => {
    const result = await kcat([
      "-b",
      tlsBroker.bootstrap,
      "-X",
      "security.protocol=SSL",
      "-m",
      "3",
      "-L",
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate verify failed/);
  });

  it("produces and consumes over SASL_SSL with SCRAM-SHA-512", async () => {
    const topic = "kcat-sasl-ssl";
    saslTlsBroker.createTopic(topic, 1);
    const login = [
      "-X",
      "security.protocol=SASL_SSL",
      "-X",
      `ssl.ca.location=${caFile}`,
      ...saslArgs("SCRAM-SHA-512", "svc-gateway", USERS["svc-gateway"]),
    ];
    await kcatOk(
      ["-b", saslTlsBroker.bootstrap, ...login, "-P", "-t", topic],
      "secure 1\nsecure 2\n",
    );
    const stdout = await kcatOk([
      "-b",
      saslTlsBroker.bootstrap,
      ...login,
      "-C",
      "-t",
      topic,
      "-o",
      "beginning",
      "-e",
      "-f",
      "%s\\n",
    ]);
    expect(stdout.trim().split("\n")).toEqual(["secure 1", "secure 2"]);
  });
});

/** A kafkajs client for `broker` with `extra` (sasl, ssl). */
function kafkajs(broker: Broker, extra: Partial<KafkaConfig>): Kafka {
  return new Kafka({
    clientId: "broker-sasl-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100 },
    ...extra,
  });
}

/** Produces `values` to `topic` and reads them back with a consumer group. */
async function roundTrip(kafka: Kafka, topic: string, values: string[]): Promise<string[]> {
  const producer = kafka.producer();
  cleanups.push(() => producer.disconnect());
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
  const consumer = kafka.consumer({ groupId: `${topic}-reader`, maxWaitTimeInMs: 500 });
  cleanups.push(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${received.length} of ${values.length} messages`)),
      20_000,
    );
    consumer
      .run({
        eachMessage: async ({ message }) => {
          received.push(message.value?.toString() ?? "<null>");
          if (received.length === values.length) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  return received;
}

describe("kafkajs", () => {
  it("produces and consumes with SCRAM-SHA-512 over SASL_PLAINTEXT", async () => {
    const topic = "kafkajs-scram-512";
    saslBroker.createTopic(topic, 1);
    const kafka = kafkajs(saslBroker, {
      sasl: { mechanism: "scram-sha-512", username: "alice", password: USERS.alice },
    });
    expect(await roundTrip(kafka, topic, ["a", "b", "c"])).toEqual(["a", "b", "c"]);
  });

  it("produces and consumes with PLAIN over SASL_SSL", async () => {
    const topic = "kafkajs-plain-ssl";
    saslTlsBroker.createTopic(topic, 1);
    const kafka = kafkajs(saslTlsBroker, {
      ssl: { ca: [cert.cert] },
      sasl: { mechanism: "plain", username: "svc-gateway", password: USERS["svc-gateway"] },
    });
    expect(await roundTrip(kafka, topic, ["x", "y"])).toEqual(["x", "y"]);
  });

  it("is refused with a wrong SCRAM-SHA-256 password, with the broker's reason", async () => {
    const kafka = kafkajs(saslBroker, {
      sasl: { mechanism: "scram-sha-256", username: "alice", password: "guess" },
    });
    const admin = kafka.admin();
    cleanups.push(() => admin.disconnect());
    await expect(admin.connect()).rejects.toThrow(
      /invalid credentials with SASL mechanism SCRAM-SHA-256/,
    );
  });
});
