/**
 * Zilla's grpc.kafka.proxy example, config unchanged, run by the CLI as a person would:
 * `gateway start --config examples/grpc.kafka.proxy/zilla.yaml --kafka-servers …` and the
 * no-argument embedded default (`bun run gateway`, as the README says). `buf curl` calls all
 * four Echo methods over 7151 (h2c) and 7153 (TLS, ALPN h2, SNI localhost); the health,
 * readiness and metrics routes answer on the ops port 7190 and not on the north ports.
 *
 * The only test file that binds the example's fixed ports (7151, 7153, 7190; the embedded
 * default also takes 9092 when it is free), so its tests run one after another.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { bufCurl, parseJsonStream } from "../support/buf-curl.ts";
import {
  bin,
  exampleConfig,
  exampleKeystorePassword,
  exitCode,
  type GatewayProcess,
  run,
  spawnCli,
  spawnGateway,
  writeExampleCertificate,
} from "../support/gateway-process.ts";

const h2cPort = 7151;
const tlsPort = 7153;
const opsPort = 7190;

let broker: Broker;
let echo: EchoServer;
let dir: string;
let caPath: string;
const running: GatewayProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cli-example-"));
  caPath = join(dir, "localhost.crt");
  // The certificate out of the example's keystore, as its README shows, for the client to trust.
  writeExampleCertificate(caPath);
  broker = await startBroker({ port: 0 });
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
});

// A test that failed midway leaves its gateway running; kill it before the next one starts.
afterEach(async () => {
  for (const proc of running.splice(0)) await proc.kill();
});

afterAll(async () => {
  await echo?.close();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const echoMethod = (name: string) => `grpc.examples.echo.Echo/${name}`;

/** Calls all four Echo methods with buf curl (gRPC protocol) at `base` with `flags`. */
async function callAllFour(base: string, flags: string[], tag: string) {
  const call = (method: string, data: string) =>
    bufCurl(["--protocol", "grpc", ...flags, "-d", data, `${base}/${echoMethod(method)}`]);
  const [unary, server, client, bidi] = await Promise.all([
    call("UnaryEcho", JSON.stringify({ message: `unary ${tag}` })),
    call("ServerStreamingEcho", JSON.stringify({ message: `stream:3:${tag}` })),
    // Client and bidi streams: several whitespace-separated messages.
    call("ClientStreamingEcho", `{"message":"c1 ${tag}"} {"message":"c2 ${tag}"}`),
    call("BidirectionalStreamingEcho", `{"message":"b1 ${tag}"} {"message":"b2 ${tag}"}`),
  ]);
  expect(unary.messages, unary.stderr).toEqual([{ message: `unary ${tag}` }]);
  expect(server.messages, server.stderr).toEqual([
    { message: `stream:3:${tag}` },
    { message: `stream:3:${tag}` },
    { message: `stream:3:${tag}` },
  ]);
  expect(client.messages, client.stderr).toEqual([{ message: `c1 ${tag},c2 ${tag}` }]);
  expect(bidi.messages, bidi.stderr).toEqual([{ message: `b1 ${tag}` }, { message: `b2 ${tag}` }]);
  for (const r of [unary, server, client, bidi]) expect(r.code, r.stderr).toBe(0);
}

/** GET over HTTP/2 (h2c prior knowledge, or TLS with ALPN h2); status, content type, body. */
function http2Get(authority: string, path: string, options: http2.SecureClientSessionOptions = {}) {
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const session = http2.connect(authority, options);
    session.on("error", reject);
    const req = session.request({ ":method": "GET", ":path": path });
    let body = "";
    let status = 0;
    let type = "";
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
      type = String(headers["content-type"] ?? "");
    });
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on("end", () => {
      session.close();
      resolve({ status, type, body });
    });
    req.on("error", (error) => {
      session.close();
      reject(error);
    });
    req.end();
  });
}

/** Polls `GET url` until it answers 200 (readiness may trail the ready log line a little). */
async function untilOk(get: () => Promise<{ status: number }>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = { status: 0 };
  while (Date.now() < deadline) {
    last = await get().catch(() => ({ status: 0 }));
    if (last.status === 200) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  return last;
}

describe("cli example", () => {
  test("start.example.unchanged", { timeout: 120_000 }, async () => {
    const proc = spawnCli(
      "bun",
      ["start", "--config", exampleConfig, "--kafka-servers", broker.bootstrap],
      {
        KEYSTORE_PASSWORD: exampleKeystorePassword,
        ECHO_SERVER_HOST: "127.0.0.1",
        ECHO_SERVER_PORT: String(echo.port),
      },
    );
    running.push(proc);
    const ready = await proc.ready();
    expect(ready.north).toEqual([[h2cPort, tlsPort]]);
    expect(ready.opsPort).toBe(opsPort);

    // h2c on 7151, then TLS on 7153 trusting the keystore's certificate, SNI localhost.
    await callAllFour(`http://127.0.0.1:${h2cPort}`, ["--http2-prior-knowledge"], "h2c");
    await callAllFour(
      `https://127.0.0.1:${tlsPort}`,
      ["--cacert", caPath, "--servername", "localhost"],
      "tls",
    );
    // What the handshake agreed on, seen from a Node client.
    const socket = tls.connect({
      host: "127.0.0.1",
      port: tlsPort,
      servername: "localhost",
      ALPNProtocols: ["h2", "http/1.1"],
      ca: readFileSync(caPath),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve).once("error", reject);
    });
    expect(socket.alpnProtocol).toBe("h2");
    expect(socket.authorized).toBe(true);
    expect((socket as tls.TLSSocket & { servername?: string }).servername).toBe("localhost");
    socket.destroy();
    // The example lists SNI localhost: another name gets no certificate.
    const wrongName = tls.connect({
      host: "127.0.0.1",
      port: tlsPort,
      servername: "other.example",
      ALPNProtocols: ["h2"],
      rejectUnauthorized: false,
    });
    const refused = await new Promise<boolean>((resolve) => {
      wrongName.once("secureConnect", () => resolve(false)).once("error", () => resolve(true));
    });
    wrongName.destroy();
    expect(refused).toBe(true);

    // Hono answers what is not an RPC on the ops port (HTTP/1.1) only: the north ports answer
    // 404, so topic and group names stay off them (docs/security.md).
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      const ops = await untilOk(async () => {
        const res = await fetch(`http://127.0.0.1:${opsPort}${path}`);
        await res.arrayBuffer();
        return res;
      });
      expect(ops.status, `ops ${path}`).toBe(200);
      const h2 = await http2Get(`http://127.0.0.1:${h2cPort}`, path);
      expect(h2.status, `h2c ${path}`).toBe(404);
      const h1 = await fetch(`http://127.0.0.1:${h2cPort}${path}`);
      await h1.arrayBuffer();
      expect(h1.status, `http/1.1 on ${h2cPort} ${path}`).toBe(404);
      const secure = await http2Get(`https://127.0.0.1:${tlsPort}`, path, {
        ca: readFileSync(caPath),
        servername: "localhost",
      });
      expect(secure.status, `tls ${path}`).toBe(404);
    }
    const health = await fetch(`http://127.0.0.1:${opsPort}/healthz`);
    expect(await health.text()).toBe("ok\n");
    const metrics = await fetch(`http://127.0.0.1:${opsPort}/metrics`);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain/);
    await metrics.arrayBuffer();
    const missing = await fetch(`http://127.0.0.1:${opsPort}/nothing-here`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();

    proc.signal("SIGINT");
    expect(await exitCode(proc, 20_000)).toBe(0);
  });

  test("embedded.default.readme", { timeout: 120_000 }, async () => {
    // The README's `npx bun run gateway` without npx, which only finds this bun (and, as npm
    // does, ends itself by the signal rather than with the gateway's exit code).
    const proc = spawnGateway(bin("bun"), ["run", "gateway"]);
    running.push(proc);
    await proc.waitForStdout(/Ctrl-C drains/);
    const commands = proc
      .stdout()
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line.startsWith("npx buf curl"));
    // One over h2c, one over TLS.
    expect(commands).toHaveLength(2);
    expect(commands[0]).toContain(`http://127.0.0.1:${h2cPort}/`);
    expect(commands[1]).toContain(`https://localhost:${tlsPort}/`);
    for (const command of commands) {
      // Exactly as printed, through a shell, from the repository directory.
      const result = await run("sh", ["-c", command]);
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      expect(parseJsonStream(result.stdout), command).toEqual([{ message: "hello" }]);
    }
    const ops = await fetch(`http://127.0.0.1:${opsPort}/healthz`);
    expect(ops.status).toBe(200);
    await ops.arrayBuffer();

    const stopped = Date.now();
    proc.signal("SIGINT");
    expect(await exitCode(proc, 15_000)).toBe(0);
    // Drains and stops in a few seconds when nothing is in flight.
    expect(Date.now() - stopped).toBeLessThan(10_000);
    expect(proc.stdout()).toContain('"msg":"stopped"');
  });
});
