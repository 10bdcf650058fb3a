/**
 * `gateway start --workers 2` (Bun; tests/runtime covers Node and Deno too): two gateway
 * processes behind the same ports. The parent's ops port reports for both (/readyz, /metrics
 * labelled per worker), SIGTERM to the parent alone drains the calls in flight in every worker
 * and exits 0, a config change reaches every worker, a worker that dies is started again,
 * and each worker's north owns its share of the reply partitions.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import {
  exitCode,
  type GatewayProcess,
  type ReadyLine,
  repoRoot,
  run,
  spawnCli,
  spawnExample,
} from "../support/gateway-process.ts";

const replyPartitions = 4;
let echo: EchoServer;
let dir: string;
const running: GatewayProcess[] = [];
const brokers: Broker[] = [];

beforeAll(async () => {
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
  dir = mkdtempSync(join(tmpdir(), "gateway-workers-"));
});

afterEach(async () => {
  for (const proc of running.splice(0)) await proc.kill();
  for (const broker of brokers.splice(0)) await broker.close();
});

afterAll(async () => {
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Two workers on the example (or `config`), with a broker of their own. */
async function startWorkers(config?: string): Promise<{ proc: GatewayProcess; ready: ReadyLine }> {
  const broker = await startBroker({ port: 0, defaultPartitions: replyPartitions });
  brokers.push(broker);
  const proc = spawnExample("bun", broker.bootstrap, echo.port, ["--workers", "2"], config);
  running.push(proc);
  return { proc, ready: await proc.ready(45_000) };
}

/** One client per connection: the parent hands connections to the workers in turn. */
function clients(port: number | undefined, n = 4) {
  return Array.from({ length: n }, () =>
    createClient(Echo, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })),
  );
}

async function metricsOf(ready: ReadyLine): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${ready.opsPort}/metrics`);
  return response.text();
}

/** The value of the first sample of `name` whose labels include every one of `labels`. */
function sample(metrics: string, name: string, labels: Record<string, string>): number {
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return Number.NaN;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000) {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out waiting until ${what}`);
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

describe("workers", () => {
  test("workers.report.together.and.share.reply.partitions", { timeout: 60_000 }, async () => {
    const { ready } = await startWorkers();
    expect((await fetch(`http://127.0.0.1:${ready.opsPort}/readyz`)).status).toBe(200);
    // A worker that gave partitions away at the second one's join reads them a moment more.
    await eventually("each worker reads its share only", async () => {
      const metrics = await metricsOf(ready);
      return ["0", "1"].every(
        (worker) =>
          sample(metrics, "gateway_reply_partitions", { worker, state: "read" }) ===
          sample(metrics, "gateway_reply_partitions", { worker, state: "owned" }),
      );
    });
    const texts = await Promise.all(
      clients(ready.north[0]?.[0], 8).map(
        async (c, i) => (await c.unaryEcho({ message: `m${i}` })).message,
      ),
    );
    expect(texts).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `m${i}`));
    const metrics = await metricsOf(ready);
    const labels = { method: "UnaryEcho", status: "OK" };
    const handled = ["0", "1"].map((worker) =>
      sample(metrics, "grpc_requests_handled_total", { ...labels, worker }),
    );
    // Connections are handed out in turn (a worker busy taking one is skipped): both served.
    expect((handled[0] as number) + (handled[1] as number)).toBe(8);
    expect(handled[0]).toBeGreaterThan(0);
    expect(handled[1]).toBeGreaterThan(0);
    // Each worker owns a share of echo-responses, together all of it, and reads only that.
    const owned = ["0", "1"].map((worker) =>
      sample(metrics, "gateway_reply_partitions", { worker, state: "owned" }),
    );
    expect(owned[0]).toBeGreaterThan(0);
    expect(owned[1]).toBeGreaterThan(0);
    expect((owned[0] as number) + (owned[1] as number)).toBe(replyPartitions);
    const read = ["0", "1"].map((worker) =>
      sample(metrics, "gateway_reply_records_read_total", { worker }),
    );
    // One message and one end marker per call, each read by one worker only.
    expect((read[0] as number) + (read[1] as number)).toBe(16);
    expect(sample(metrics, "gateway_workers", { state: "ready" })).toBe(2);
  });

  test("workers.drain.on.sigterm.to.the.parent", { timeout: 60_000 }, async () => {
    const { proc, ready } = await startWorkers();
    const calls = clients(ready.north[0]?.[0]).map((c, i) =>
      c.unaryEcho({ message: `delay:1500:draining ${i}` }).then((r) => r.message),
    );
    for (const call of calls) call.catch(() => {});
    // All four reached the upstream through Kafka, from both workers.
    await eventually("the upstream holds four calls", async () =>
      [0, 1, 2, 3].every((i) =>
        echo.requests.some((r) => r.messages.includes(`delay:1500:draining ${i}`)),
      ),
    );
    process.kill(proc.child.pid as number, "SIGTERM");
    expect(await Promise.all(calls)).toEqual([0, 1, 2, 3].map((i) => `delay:1500:draining ${i}`));
    expect(await exitCode(proc, 30_000)).toBe(0);
    const out = proc.stdout();
    expect(out).toContain('"msg":"stopped","worker":0');
    expect(out).toContain('"msg":"stopped","worker":1');
  });

  test("workers.reload.reaches.every.worker", { timeout: 60_000 }, async () => {
    const example = join(dir, "reload");
    cpSync(join(repoRoot, "examples/grpc.kafka.proxy"), example, { recursive: true });
    const config = join(example, "zilla.yaml");
    const { ready } = await startWorkers(config);
    const all = clients(ready.north[0]?.[0]);
    for (const c of all) expect((await c.unaryEcho({ message: "before" })).message).toBe("before");
    // Unary calls lose their route; streaming keeps it.
    const text = readFileSync(config, "utf8");
    const narrowed = text.replace(
      /(north_grpc_kafka_mapping:[\s\S]*?- method: )grpc\.examples\.echo\.Echo\/\*/,
      "$1grpc.examples.echo.Echo/ServerStreamingEcho",
    );
    expect(narrowed).not.toBe(text);
    writeFileSync(config, narrowed);
    await eventually("both workers applied the change", async () => {
      const metrics = await metricsOf(ready);
      return ["0", "1"].every(
        (worker) =>
          sample(metrics, "gateway_config_reloads_total", { worker, result: "applied" }) === 1,
      );
    });
    for (const c of all) {
      const error = await c
        .unaryEcho({ message: "after" })
        .then(() => undefined, ConnectError.from);
      expect(error?.code).not.toBeUndefined();
      expect(error?.code).not.toBe(Code.Unknown);
      const replies: string[] = [];
      for await (const r of c.serverStreamingEcho({ message: "stream:1:still" })) {
        replies.push(r.message);
      }
      expect(replies).toEqual(["stream:1:still"]);
    }
  });

  // The new worker joins west's group only once the dead member's session (30 s) expires.
  test("workers.restart.a.worker.that.died", { timeout: 120_000 }, async () => {
    const { proc, ready } = await startWorkers();
    const listed = await run("ps", ["-o", "pid=", "--ppid", String(proc.child.pid)]);
    const workers = listed.stdout.split("\n").map(Number).filter(Boolean);
    expect(workers).toHaveLength(2);
    process.kill(workers[0] as number, "SIGKILL");
    await eventually(
      "the worker is back",
      async () => {
        const metrics = await metricsOf(ready);
        return (
          sample(metrics, "gateway_worker_restarts_total", {}) === 1 &&
          sample(metrics, "gateway_workers", { state: "ready" }) === 2
        );
      },
      90_000,
    );
    expect((await fetch(`http://127.0.0.1:${ready.opsPort}/readyz`)).status).toBe(200);
    const texts = await Promise.all(
      clients(ready.north[0]?.[0]).map(
        async (c, i) => (await c.unaryEcho({ message: `r${i}` })).message,
      ),
    );
    expect(texts).toEqual(["r0", "r1", "r2", "r3"]);
    expect(proc.stdout()).toContain('"msg":"worker died; starting it again"');
  });

  test("workers.bad.flags.are.usage.errors", { timeout: 30_000 }, async () => {
    const start = ["start", "--config", "examples/grpc.kafka.proxy/zilla.yaml"];
    for (const [args, message] of [
      [[...start, "--workers", "0"], /--workers: expected a number of processes/],
      [[...start, "--workers", "many"], /--workers: expected a number of processes/],
      [
        [...start, "--reply-partitions", "some"],
        /--reply-partitions: expected all, group or partition numbers/,
      ],
      // Only `start` runs workers: the other commands do not know the flag.
      [["broker", "--workers", "2"], /gateway broker: Unknown option '--workers'/],
      [
        ["validate", "--config", "x.yaml", "--workers", "2"],
        /gateway validate: Unknown option '--workers'/,
      ],
    ] as const) {
      const proc = spawnCli("bun", [...args]);
      running.push(proc);
      expect(await exitCode(proc, 20_000)).toBe(2);
      expect(proc.stderr()).toMatch(message);
    }
  });
});
