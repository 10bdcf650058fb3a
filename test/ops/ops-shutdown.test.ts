/**
 * Graceful shutdown with 100 calls in flight through Kafka: every call finishes OK, west
 * commits every request record it answered and leaves its consumer group (which is empty at
 * once, not after a session timeout). Once through the API (gateway.close) and once as a
 * process: the CLI under Bun, stopped with SIGTERM, exits 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { startGateway } from "../../src/gateway.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exampleConfig, replyTopic, requestTopic } from "../support/stack.ts";
import { eventually, gatewayYaml } from "./ops-fixture.ts";

const inFlight = 100;
const groupId = "zilla:example-west_kafka_grpc_remote_server";
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

let broker: Broker;
let echo: EchoServer;
let kafka: Kafka;

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: 3 });
  broker.createTopic(requestTopic, 3);
  broker.createTopic(replyTopic, 3);
  echo = await startEchoServer();
  kafka = new Kafka({ clientId: "test", brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  await echo?.close();
  await broker?.close();
});

/** Starts `inFlight` slow unary calls and resolves once the upstream holds all of them. */
async function slowCalls(baseUrl: string, tag: string) {
  const client = createClient(Echo, createGrpcTransport({ baseUrl }));
  const texts = Array.from({ length: inFlight }, (_, i) => `delay:1500:${tag}-${i}`);
  const calls = texts.map((message) => client.unaryEcho({ message }).then((r) => r.message));
  for (const c of calls) c.catch(() => {});
  await eventually(
    () => texts.every((t) => echo.requests.some((r) => r.messages.includes(t))),
    30_000,
  );
  return { texts, calls };
}

/** Whether the group committed up to every partition's end and has no member left. */
async function committedAndLeft() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(requestTopic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [requestTopic] });
    const {
      groups: [group],
    } = await admin.describeGroups([groupId]);
    return {
      lag: ends.map((e) => {
        const done = committed?.partitions.find((p) => p.partition === e.partition)?.offset;
        return Number(e.high) - Number(done ?? -1);
      }),
      state: group?.state,
      members: group?.members.length,
      records: ends.reduce((n, e) => n + Number(e.high), 0),
    };
  } finally {
    await admin.disconnect();
  }
}

describe("graceful shutdown", () => {
  test("close.during.100.calls.finishes.all.commits.and.leaves", { timeout: 60_000 }, async () => {
    const config = exampleConfig(broker.bootstrap, echo.port);
    const gateway = await startGateway(config, { logger: silentLogger });
    const { texts, calls } = await slowCalls(
      `http://127.0.0.1:${gateway.north[0]?.ports[0]}`,
      "api",
    );
    await gateway.close(20_000);
    expect(await Promise.all(calls)).toEqual(texts);
    const after = await committedAndLeft();
    expect(after.lag).toEqual([0, 0, 0]);
    expect(after.state).toBe("Empty");
    expect(after.members).toBe(0);
    expect(after.records).toBeGreaterThanOrEqual(inFlight * 2);
  });

  test("sigterm.during.100.calls.finishes.all.and.exits.0", { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "gateway-sigterm-"));
    const path = join(dir, "zilla.yaml");
    writeFileSync(path, gatewayYaml({ bootstrap: broker.bootstrap, echoPort: echo.port }));
    const child: ChildProcess = spawn(
      join(repoRoot, "node_modules/.bin/bun"),
      [
        "src/cli.ts",
        "start",
        "--config",
        path,
        "--kafka-servers",
        broker.bootstrap,
        "--ops-port",
        "0",
      ],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      await eventually(() => stdout.includes('"msg":"gateway ready"'), 30_000).catch(() => {
        throw new Error(`no ready line; stdout:\n${stdout}\nstderr:\n${stderr}`);
      });
      const ready = stdout
        .split("\n")
        .map((l) => (l.startsWith("{") ? (JSON.parse(l) as Record<string, unknown>) : {}))
        .find((l) => l.msg === "gateway ready") as { north: number[][] };
      const port = ready.north[0]?.[0];
      const { texts, calls } = await slowCalls(`http://127.0.0.1:${port}`, "process");
      child.kill("SIGTERM");
      expect(await Promise.all(calls)).toEqual(texts);
      expect(await exited).toBe(0);
      expect(stdout).toContain('"msg":"stopped"');
      const after = await committedAndLeft();
      expect(after.lag).toEqual([0, 0, 0]);
      expect(after.state).toBe("Empty");
      expect(after.members).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
