/**
 * The deployment delivery-check.ts measures: librdkafka's mock cluster (one broker per
 * partition, and the west group's coordinator on a broker that leads nothing, so a fault hits
 * exactly one part), the echo upstream in this process (it counts executions per idempotency
 * key), north in this process (startGateway, west-less), and west as its own process
 * (`gateway start` on a west-only zilla.yaml), which the check kills and starts again.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka as KafkaJs, logLevel } from "kafkajs";
import { Echo } from "../gen/grpc/examples/echo/echo_pb.ts";
import { type Gateway, startGateway } from "../src/gateway.ts";
import { findCoordinatorApi } from "../src/kafka/client/apis/find-coordinator.ts";
import { callApi } from "../src/kafka/client/apis/kafka-api.ts";
import { KafkaCluster } from "../src/kafka/client/kafka-cluster.ts";
import { testSettings } from "../src/kafka/client/wire-test-kit.ts";
import { createLogger } from "../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../src/upstream/echo-server.ts";
import { defaultChangelogTopic } from "../src/west/changelog-topic.ts";
import { exampleConfig, replyTopic, requestTopic } from "../test/support/example-config.ts";
import { type GatewayProcess, spawnCli } from "../test/support/gateway-process.ts";
import { type MockKafka, startMockKafka } from "../test/support/mockkafka.ts";

export { replyTopic, requestTopic };

export const westGroupId = "zilla:example-west_kafka_grpc_remote_server";
export const changelogTopic = defaultChangelogTopic(
  "example",
  "west_kafka_grpc_remote_server",
  requestTopic,
);

/** West's group timings: a session longer than the 5 s coordinator outage, short restarts. */
const groupFlags = [
  "--kafka-session-timeout-ms",
  "10000",
  "--kafka-heartbeat-interval-ms",
  "500",
  "--kafka-rebalance-timeout-ms",
  "10000",
];

// Zilla's example without its north bindings: west alone, as a second process would run it.
const westYaml = `---
name: example
bindings:
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
        - kafka:29092
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
          - topic: ${requestTopic}
            reply-to: ${replyTopic}
            method: grpc.examples.echo.Echo/*
        with:
          scheme: http
          authority: \${{env.ECHO_SERVER_HOST}}:\${{env.ECHO_SERVER_PORT}}
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
      versions:
        - h2
    exit: west_tcp_client
  west_tcp_client:
    type: tcp
    kind: client
    options:
      host: \${{env.ECHO_SERVER_HOST}}
      port: \${{env.ECHO_SERVER_PORT}}
`;

/** A west process: its log lines with the time each arrived, and its ops port. */
export interface WestProcess {
  proc: GatewayProcess;
  /** Log lines (parsed) with their arrival time (ms since the epoch). */
  lines: { at: number; msg: string; line: Record<string, unknown> }[];
  /** Log lines whose msg matches `pattern`, since `from` (ms). */
  count(pattern: RegExp, from?: number): number;
  /** Resolves once the gateway printed "gateway ready". */
  ready(): Promise<void>;
}

/** Which broker leads what: `coordinator` leads nothing; every partition has its own broker. */
export interface Layout {
  coordinator: number;
  request: number[];
  reply: number[];
  changelog: number[];
}

export interface DeliveryStack {
  mock: MockKafka;
  echo: EchoServer;
  north: Gateway;
  northLogs: Record<string, unknown>[];
  client: Client<typeof Echo>;
  kafkajs: KafkaJs;
  layout: Layout;
  opsPort: number;
  west?: WestProcess;
  /** Starts west (`gateway start`); `waitReady` false returns as soon as it is spawned. */
  startWest(waitReady?: boolean): Promise<WestProcess>;
  /** GET /readyz on west's ops port: the status, or 0 when nothing answers. */
  readyz(): Promise<{ status: number; body: string }>;
  /** Executions of the upstream for calls with idempotency key `key`. */
  executions(key: string): number;
  /** Request records beyond the group's committed offsets (0: west has committed everything). */
  uncommitted(): Promise<number>;
  close(): Promise<void>;
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject).listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The broker that coordinates `groupId`, as the mock cluster answers FindCoordinator. */
async function coordinatorOf(brokers: string[], groupId: string): Promise<number> {
  const cluster = new KafkaCluster(testSettings(brokers[0] as string, { servers: brokers }));
  try {
    const connection = await cluster.anyBroker();
    return (await callApi(connection, findCoordinatorApi, { groupId })).node;
  } finally {
    cluster.close();
  }
}

/**
 * Starts the mock cluster (10 brokers), echo and north. Request partitions 1 and 2 start on one
 * broker (the ListOffsets answer the mock garbles, case 6); `separateRequestLeaders` moves
 * partition 2 to its own broker afterwards.
 */
export async function startDeliveryStack(): Promise<DeliveryStack> {
  const mock = await startMockKafka({
    brokers: 10,
    topics: { [requestTopic]: 3, [replyTopic]: 3, [changelogTopic]: 3 },
  });
  const dir = await mkdtemp(join(tmpdir(), "delivery-check-"));
  const yamlPath = join(dir, "west.yaml");
  await writeFile(yamlPath, westYaml);
  const coordinator = await coordinatorOf(mock.brokers, westGroupId);
  const others = Array.from({ length: 10 }, (_, i) => i + 1).filter((b) => b !== coordinator);
  const at = (i: number) => others[i] as number;
  const layout: Layout = {
    coordinator,
    request: [at(0), at(1), at(2)],
    reply: [at(3), at(4), at(5)],
    changelog: [at(6), at(7), at(8)],
  };
  for (const p of [0, 1, 2]) {
    // Request partition 2 shares partition 1's leader until case 6 has been measured.
    await mock.leader(requestTopic, p, p === 2 ? at(1) : at(p));
    await mock.leader(replyTopic, p, layout.reply[p] as number);
    await mock.leader(changelogTopic, p, layout.changelog[p] as number);
  }
  const echo = await startEchoServer();
  const config = exampleConfig(mock.brokers[0] as string, echo.port);
  config.kafka.servers = mock.brokers;
  config.west = [];
  const northLogs: Record<string, unknown>[] = [];
  const logger = createLogger(process.env.GATEWAY_TEST_LOG ? "debug" : "info", (line) => {
    northLogs.push(JSON.parse(line) as Record<string, unknown>);
    if (process.env.GATEWAY_TEST_LOG) process.stdout.write(`north ${line}\n`);
  });
  const north = await startGateway(config, { logger });
  const northUrl = `http://127.0.0.1:${north.north[0]?.ports[0] ?? 0}`;
  const kafkajs = new KafkaJs({
    clientId: "delivery-check",
    brokers: mock.brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
  const admin = kafkajs.admin();
  await admin.connect();
  const opsPort = await freePort();

  const stack: DeliveryStack = {
    mock,
    echo,
    north,
    northLogs,
    client: createClient(Echo, createGrpcTransport({ baseUrl: northUrl })),
    kafkajs,
    layout,
    opsPort,
    async startWest(waitReady = true) {
      const proc = spawnCli(
        "bun",
        [
          "start",
          "-c",
          yamlPath,
          "--kafka-servers",
          mock.bootstrap,
          "--ops-port",
          String(opsPort),
          "--ops-host",
          "127.0.0.1",
          "--log-level",
          process.env.GATEWAY_TEST_LOG ? "debug" : "info",
          ...groupFlags,
        ],
        { ECHO_SERVER_HOST: "127.0.0.1", ECHO_SERVER_PORT: String(echo.port) },
      );
      const lines: WestProcess["lines"] = [];
      let partial = "";
      proc.child.stdout?.on("data", (chunk: Buffer) => {
        const text = partial + chunk.toString();
        const parts = text.split("\n");
        partial = parts.pop() ?? "";
        for (const raw of parts) {
          if (process.env.GATEWAY_TEST_LOG) process.stdout.write(`west ${raw}\n`);
          if (!raw.startsWith("{")) continue;
          try {
            const line = JSON.parse(raw) as Record<string, unknown>;
            lines.push({ at: Date.now(), msg: String(line.msg ?? ""), line });
          } catch {
            // Not a log line.
          }
        }
      });
      const west: WestProcess = {
        proc,
        lines,
        count: (pattern, from = 0) =>
          lines.filter((l) => l.at >= from && pattern.test(l.msg)).length,
        async ready() {
          await proc.ready(120_000);
        },
      };
      stack.west = west;
      if (waitReady) await west.ready();
      return west;
    },
    async readyz() {
      try {
        const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`, {
          signal: AbortSignal.timeout(2_000),
        });
        return { status: response.status, body: await response.text() };
      } catch {
        return { status: 0, body: "" };
      }
    },
    executions(key) {
      return echo.requests.filter((r) => r.headers.get("idempotency-key") === key).length;
    },
    async uncommitted() {
      const ends = await admin.fetchTopicOffsets(requestTopic);
      const [committed] = await admin.fetchOffsets({
        groupId: westGroupId,
        topics: [requestTopic],
      });
      let behind = 0;
      for (const end of ends) {
        const at = committed?.partitions.find((p) => p.partition === end.partition)?.offset;
        const from = at === undefined || at === "-1" ? 0 : Number(at);
        behind += Number(end.offset) - from;
      }
      return behind;
    },
    async close() {
      await stack.west?.proc.kill();
      await admin.disconnect().catch(() => {});
      await north.close(1_000);
      await echo.close();
      await mock.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** One unary call's outcome through north. */
export interface CallOutcome {
  key: string | undefined;
  message: string;
  startedAt: number;
  ms: number;
  /** "OK" or the gRPC code's name. */
  code: string;
  /** The reply's text (OK only). */
  reply?: string;
}

/** A unary UnaryEcho through north, with idempotency key `key` when given. */
export async function callEcho(
  client: Client<typeof Echo>,
  message: string,
  key: string | undefined,
  timeoutMs: number,
): Promise<CallOutcome> {
  const startedAt = Date.now();
  try {
    const reply = await client.unaryEcho(
      { message },
      { timeoutMs, ...(key ? { headers: { "idempotency-key": key } } : {}) },
    );
    return {
      key,
      message,
      startedAt,
      ms: Date.now() - startedAt,
      code: "OK",
      reply: reply.message,
    };
  } catch (err) {
    const code = ConnectError.from(err).code;
    return {
      key,
      message,
      startedAt,
      ms: Date.now() - startedAt,
      code: Code[code] ?? String(code),
    };
  }
}

/** Counts of each outcome code, e.g. "OK 20" or "DeadlineExceeded 3, OK 17". */
export function codeCounts(outcomes: CallOutcome[]): string {
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(o.code, (counts.get(o.code) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
}

/** Polls `check` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits `ms`: only where the check holds a fault for a set time (the fault's duration). */
export function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
