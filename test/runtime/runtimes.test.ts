/**
 * The same sources run under Node (the `npm run build` output in dist/), Bun and Deno: each
 * starts the example config unchanged (on free ports), answers a unary and a bidi call
 * through Kafka over h2c, a unary call over TLS (the example's PKCS#12 keystore, ALPN h2,
 * SNI localhost), /healthz on its ops port, and stops cleanly on SIGINT (exit 0); each also
 * runs it as two workers sharing the port (`--workers 2`). The Node build also runs the no-argument default, which finds the example from dist/src/.
 *
 * Flow control on each runtime, through north, Kafka, west and the upstream and back:
 * requests of 2 MiB and of 4 MiB (the default message limit, exactly), a server-streaming
 * reply of 10 × 500 kB, and a bidi stream carrying 50 MiB each way (Bun once stalled every
 * stream at its first window, 1 MiB).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Echo, EchoRequestSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { parseJsonStream } from "../support/buf-curl.ts";
import { withDistLock } from "../support/dist-lock.ts";
import {
  bin,
  exitCode,
  type GatewayProcess,
  type Runtime,
  run,
  spawnCli,
  spawnExample,
  writeExampleCertificate,
} from "../support/gateway-process.ts";

let echo: EchoServer;
let dir: string;
let ca: Buffer;
const running: GatewayProcess[] = [];
const brokers: Broker[] = [];

beforeAll(async () => {
  // Node 20 does not run .ts: what `npm run build` does (and `GATEWAY_RUNTIME=node ./gateway`
  // does when a source is newer than dist/).
  const build = await withDistLock(() =>
    run(bin("tsc"), ["-p", "tsconfig.build.json"], { timeoutMs: 150_000 }),
  );
  expect(build.code, `${build.stdout}${build.stderr}`).toBe(0);
  dir = mkdtempSync(join(tmpdir(), "runtimes-"));
  const caPath = join(dir, "localhost.crt");
  writeExampleCertificate(caPath);
  ca = readFileSync(caPath);
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
}, 180_000);

// A test that failed midway leaves its gateway running; kill it before the next one starts.
afterEach(async () => {
  for (const proc of running.splice(0)) await proc.kill();
  for (const broker of brokers.splice(0)) await broker.close();
});

afterAll(async () => {
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("runtimes", () => {
  test.each(["node", "bun", "deno"] as Runtime[])(
    "runtime.%s",
    { timeout: 60_000 },
    async (runtime) => {
      // A broker per runtime: a gateway killed after a failure leaves no group member behind.
      const broker = await startBroker({ port: 0 });
      brokers.push(broker);
      const proc = spawnExample(runtime, broker.bootstrap, echo.port);
      running.push(proc);
      const ready = await proc.ready(45_000);
      const [h2cPort, tlsPort] = ready.north[0] ?? [];

      const client = createClient(
        Echo,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${h2cPort}` }),
      );
      expect((await client.unaryEcho({ message: `unary on ${runtime}` })).message).toBe(
        `unary on ${runtime}`,
      );
      async function* requests() {
        yield { message: `bidi 1 on ${runtime}` };
        yield { message: `bidi 2 on ${runtime}` };
      }
      const replies: string[] = [];
      for await (const r of client.bidirectionalStreamingEcho(requests())) replies.push(r.message);
      expect(replies).toEqual([`bidi 1 on ${runtime}`, `bidi 2 on ${runtime}`]);

      const secure = createClient(
        Echo,
        createGrpcTransport({
          baseUrl: `https://127.0.0.1:${tlsPort}`,
          nodeOptions: { ca, servername: "localhost" },
        }),
      );
      expect((await secure.unaryEcho({ message: `tls on ${runtime}` })).message).toBe(
        `tls on ${runtime}`,
      );

      const health = await fetch(`http://127.0.0.1:${ready.opsPort}/healthz`);
      expect(health.status).toBe(200);
      await health.arrayBuffer();

      proc.signal("SIGINT");
      expect(await exitCode(proc, 20_000)).toBe(0);
      expect(proc.stdout()).toContain('"msg":"stopped"');
    },
  );

  test.each(["node", "bun", "deno"] as Runtime[])(
    "flow.control.%s",
    { timeout: 180_000 },
    async (runtime) => {
      const broker = await startBroker({ port: 0 });
      brokers.push(broker);
      const proc = spawnExample(runtime, broker.bootstrap, echo.port);
      running.push(proc);
      const ready = await proc.ready(45_000);
      const client = createClient(
        Echo,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${ready.north[0]?.[0]}` }),
      );

      const twoMiB = "a".repeat(2 * 1024 * 1024);
      expect((await client.unaryEcho({ message: twoMiB }, { timeoutMs: 60_000 })).message).toBe(
        twoMiB,
      );
      // Field tag (1 byte) and a 4-byte length: the message is exactly 4 MiB, the limit.
      const atLimit = "b".repeat(4 * 1024 * 1024 - 5);
      expect(
        toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: atLimit })),
      ).toHaveLength(4 * 1024 * 1024);
      expect((await client.unaryEcho({ message: atLimit }, { timeoutMs: 60_000 })).message).toBe(
        atLimit,
      );

      const large = `stream:10:${"c".repeat(500_000)}`;
      const streamed: string[] = [];
      for await (const r of client.serverStreamingEcho({ message: large }, { timeoutMs: 60_000 }))
        streamed.push(r.message);
      expect(streamed).toHaveLength(10);
      expect(streamed.every((m) => m === large)).toBe(true);

      // 50 MiB each way in 1 MiB messages, sent as fast as the stream takes them.
      const chunk = "d".repeat(1024 * 1024 - 16);
      async function* fifty() {
        for (let i = 0; i < 50; i++) yield { message: `${String(i).padStart(8, "0")}${chunk}` };
      }
      let echoed = 0;
      let bytes = 0;
      for await (const r of client.bidirectionalStreamingEcho(fifty(), { timeoutMs: 120_000 })) {
        expect(r.message.slice(0, 8)).toBe(String(echoed).padStart(8, "0"));
        echoed++;
        bytes += r.message.length;
      }
      expect(echoed).toBe(50);
      expect(bytes).toBeGreaterThanOrEqual(50 * (1024 * 1024 - 16));

      proc.signal("SIGINT");
      expect(await exitCode(proc, 30_000)).toBe(0);
    },
  );

  test.each(["node", "bun", "deno"] as Runtime[])(
    "runtime.%s.workers",
    { timeout: 60_000 },
    async (runtime) => {
      // Two workers behind one port (node:cluster on every runtime: docs/scaling.md).
      const broker = await startBroker({ port: 0, defaultPartitions: 4 });
      brokers.push(broker);
      const proc = spawnExample(runtime, broker.bootstrap, echo.port, ["--workers", "2"]);
      running.push(proc);
      const ready = await proc.ready(45_000);
      const port = ready.north[0]?.[0];
      // Connections go to the workers in turn: four of them reach both.
      const texts = await Promise.all(
        [0, 1, 2, 3].map(async (i) => {
          const client = createClient(
            Echo,
            createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
          );
          return (await client.unaryEcho({ message: `worker call ${i}` })).message;
        }),
      );
      expect(texts).toEqual([0, 1, 2, 3].map((i) => `worker call ${i}`));
      const metrics = await (await fetch(`http://127.0.0.1:${ready.opsPort}/metrics`)).text();
      for (const worker of ["0", "1"]) {
        expect(metrics).toMatch(
          new RegExp(`grpc_requests_handled_total\\{worker="${worker}",[^}]*status="OK"\\} [1-9]`),
        );
      }
      // SIGTERM to the parent alone: it drains every worker and exits 0.
      process.kill(proc.child.pid as number, "SIGTERM");
      expect(await exitCode(proc, 20_000)).toBe(0);
    },
  );

  test("runtime.node.default.from.dist", { timeout: 60_000 }, async () => {
    // The no-argument default finds the bundled example from dist/src/ too.
    const proc = spawnCli("node", ["--ephemeral-ports", "--ops-port", "0"]);
    running.push(proc);
    await proc.waitForStdout(/Ctrl-C drains/, 45_000);
    const command = proc
      .stdout()
      .split("\n")
      .map((line) => line.trim())
      .find((line) => line.startsWith("npx buf curl") && line.includes("http://"));
    expect(command).toBeDefined();
    const result = await run("sh", ["-c", command as string]);
    expect(result.code, result.stderr).toBe(0);
    expect(parseJsonStream(result.stdout)).toEqual([{ message: "hello" }]);
    proc.signal("SIGINT");
    expect(await exitCode(proc, 20_000)).toBe(0);
  });
});
