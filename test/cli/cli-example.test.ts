/**
 * The commands of the README, as written, and Zilla's grpc.kafka.proxy example, config
 * unchanged, run by the CLI as a person or a supervisor would.
 *
 * - Every command the README gives (sh blocks and the `command` column of its tables) is run
 *   as written, or listed here with the reason it is not (`readme.commands.accounted.for`
 *   fails on a command that is neither): the example's three commands (broker, echo upstream,
 *   `start`) and both `buf curl` calls, the default command and the `buf curl` commands it
 *   prints, `validate`, `--help`, the default under Node and Deno.
 * - Signals: SIGTERM and SIGINT, sent to the README command's process (what a supervisor
 *   signals) or to its process group (what a terminal's Ctrl-C or `kill %1` does), drain and
 *   stop it with exit 0, and leave 7151, 7153, 7190 and 9092 free.
 * - A second instance fails at once with one line naming the port in use and the flag that
 *   moves it.
 * - `start --config examples/grpc.kafka.proxy/zilla.yaml`: `buf curl` calls all four Echo
 *   methods over 7151 (h2c) and 7153 (TLS, ALPN h2, SNI localhost); the health, readiness and
 *   metrics routes answer on the ops port 7190 and not on the north ports (404).
 *
 * The only test file that binds the fixed ports (7151, 7153, 7190, 9092 and the echo
 * upstream's 50051), so its tests run one after another; run it, as the whole suite, under
 * `flock /tmp/gw-suite.lock`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { bufCurl, parseJsonStream } from "../support/buf-curl.ts";
import { withDistLock } from "../support/dist-lock.ts";
import {
  exampleConfig,
  exampleKeystorePassword,
  exitCode,
  type GatewayProcess,
  repoRoot,
  run,
  spawnCli,
  spawnGateway,
  writeExampleCertificate,
} from "../support/gateway-process.ts";
import { readmeCommands, simpleCommand } from "../support/readme-commands.ts";

const h2cPort = 7151;
const tlsPort = 7153;
const opsPort = 7190;
const brokerPort = 9092;
/** Every fixed port a README command binds. */
const fixedPorts = [h2cPort, tlsPort, opsPort, brokerPort, 50051];

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
  let last = { status: 0 };
  try {
    await vi.waitFor(
      async () => {
        last = await get().catch(() => ({ status: 0 }));
        if (last.status !== 200) throw new Error(`status ${last.status}`);
      },
      { timeout: timeoutMs, interval: 200 },
    );
  } catch {
    // The caller asserts on the last answer, which names the status.
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
});

// ---- the README's commands, as written ---------------------------------------------------

const readme = readmeCommands(join(repoRoot, "README.md"));

/** What a README command is, by how it starts; the text run is always the README's own. */
const roles: ReadonlyArray<readonly [RegExp, string]> = [
  [/^\.\/gateway$/, "default"],
  [/^\.\/gateway --config \S+$/, "other-example"],
  [/^\.\/gateway broker( |$)/, "broker"],
  [/^\.\/gateway echo-upstream( |$)/, "echo-upstream"],
  [/^(\w+=\S+ )*\.\/gateway start /, "start"],
  [/^(\w+=\S+ )*\.\/gateway validate /, "validate"],
  [/^\.\/gateway( [\w-]+)? --help$/, "help"],
  [/^npx buf curl /, "call"],
  [/^GATEWAY_RUNTIME=(node|deno) \.\/gateway$/, "runtime"],
];

/** README commands this file does not run, and why. */
const notRunHere: ReadonlyArray<readonly [RegExp, string]> = [
  [/^npm ci$/, "the tests run in a clone npm ci installed (.ci/run runs it first)"],
  [/^bash \.ci\/run$/, "it runs these tests"],
  [/^npx buf generate$/, "npm run check runs it and fails when it would change gen/"],
  [/^npm run bench/, "benchmarks run alone (flock /tmp/gw-bench.lock); .ci/run runs the smoke"],
  [/^docker /, "no Docker engine here; .ci/run lints the Dockerfile"],
];

function roleOf(command: string): string | undefined {
  return roles.find(([pattern]) => pattern.test(command))?.[1];
}

function commandsOf(role: string): string[] {
  return readme.filter((command) => roleOf(command) === role);
}

/** Starts a long-running README command as a shell runs it, as its own process group (a job). */
function startAsWritten(command: string): GatewayProcess {
  const { env, program, args } = simpleCommand(command);
  const proc = spawnGateway(program, args, env);
  running.push(proc);
  return proc;
}

/** Runs a short README command through a shell, from the repository, to its end. */
function runAsWritten(command: string, timeoutMs = 60_000) {
  return run("sh", ["-c", command], { timeoutMs });
}

/** Every fixed port can be bound again: nothing was left holding one. */
async function expectPortsFree() {
  for (const port of fixedPorts) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "0.0.0.0", () => resolve(true));
    });
    if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(bound, `port ${port} is free`).toBe(true);
  }
}

/** The `buf curl` commands the default prints, each answered with "hello". */
async function callPrintedCommands(proc: GatewayProcess) {
  const printed = proc
    .stdout()
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("npx buf curl"));
  // One over h2c, one over TLS.
  expect(printed).toHaveLength(2);
  expect(printed[0]).toContain(`http://127.0.0.1:${h2cPort}/`);
  expect(printed[1]).toContain(`https://localhost:${tlsPort}/`);
  for (const command of printed) {
    const result = await runAsWritten(command);
    expect(result.code, `${command}\n${result.stderr}`).toBe(0);
    expect(parseJsonStream(result.stdout), command).toEqual([{ message: "hello" }]);
  }
}

describe("readme", () => {
  test("readme.commands.accounted.for", () => {
    for (const command of readme) {
      const reason = notRunHere.find(([pattern]) => pattern.test(command))?.[1];
      expect(
        roleOf(command) ?? reason,
        `README command not run by this file nor listed with a reason: ${command}`,
      ).toBeDefined();
    }
    // What the tests below run is there to run.
    expect(commandsOf("default")).toHaveLength(1);
    for (const role of ["broker", "echo-upstream", "start", "validate", "help"]) {
      expect(commandsOf(role).length, role).toBeGreaterThan(0);
    }
    expect(commandsOf("call")).toHaveLength(2);
    expect(commandsOf("runtime")).toHaveLength(2);
    expect(commandsOf("other-example").length).toBeGreaterThan(0);
  });

  test("readme.example.as.zillas.users.run.it", { timeout: 180_000 }, async () => {
    const [brokerCommand] = commandsOf("broker");
    const [echoCommand] = commandsOf("echo-upstream");
    const [startCommand] = commandsOf("start");
    const broker = startAsWritten(brokerCommand as string);
    await broker.waitForStdout(/^broker listening on 127\.0\.0\.1:9092 /m);
    const echo = startAsWritten(echoCommand as string);
    await echo.waitForStdout(/^echo upstream listening on 127\.0\.0\.1:50051 /m);
    const gateway = startAsWritten(startCommand as string);
    const ready = await gateway.ready();
    expect(ready.north).toEqual([[h2cPort, tlsPort]]);
    expect(ready.opsPort).toBe(opsPort);

    for (const call of commandsOf("call")) {
      const result = await runAsWritten(call);
      expect(result.code, `${call}\n${result.stderr}`).toBe(0);
      expect(parseJsonStream(result.stdout), call).toEqual([{ message: "hello" }]);
    }

    // A second instance fails at once, with one line naming the port and what moves it.
    const second = await runAsWritten(startCommand as string);
    expect(second.code).toBe(1);
    expect(second.stderr.trimEnd()).toBe(
      `port ${opsPort} is in use by another process (the ops port: /healthz /readyz /metrics); stop that process, or pass --ops-port N (0 = any free port) or --ops-port off`,
    );
    const third = await runAsWritten(`${startCommand} --ops-port 0`);
    expect(third.code).toBe(1);
    expect(third.stderr.trimEnd()).toBe(
      `port ${h2cPort} is in use by another process (gRPC h2c listener of north_grpc_kafka_mapping); stop that process, or change the tcp server's options.port in ${exampleConfig}, or pass --ephemeral-ports to bind free ports`,
    );

    // Ctrl-C stops each of the three, the gateway first.
    for (const proc of [gateway, echo, broker]) {
      proc.signal("SIGINT");
      expect(await exitCode(proc, 30_000)).toBe(0);
    }
    await expectPortsFree();
  });

  test("readme.default.command", { timeout: 120_000 }, async () => {
    const proc = startAsWritten(commandsOf("default")[0] as string);
    await proc.waitForStdout(/Ctrl-C drains/);
    // Its in-memory broker keeps at most 128 MiB of each partition (README: The embedded broker).
    expect(proc.stdout()).toMatch(
      /"msg":"embedded broker started[^\n]*"retentionBytesPerPartition":134217728/,
    );
    await callPrintedCommands(proc);
    const metrics = await fetch(`http://127.0.0.1:${opsPort}/metrics`);
    expect(metrics.status).toBe(200);
    // No config file is watched here, yet every reload result is exposed, at 0.
    expect(await metrics.text()).toContain(
      'gateway_config_reloads_total{namespace="example",result="applied"} 0',
    );

    const stopped = Date.now();
    proc.signal("SIGINT");
    expect(await exitCode(proc, 15_000)).toBe(0);
    // Drains and stops in a few seconds when nothing is in flight.
    expect(Date.now() - stopped).toBeLessThan(10_000);
    expect(proc.stdout()).toContain('"msg":"stopped"');
  });

  test.each([
    ["SIGTERM", "process"],
    ["SIGINT", "process"],
    ["SIGTERM", "group"],
    ["SIGINT", "group"],
  ] as const)("readme.default.%s.to.its.%s", { timeout: 120_000 }, async (signal, target) => {
    const proc = startAsWritten(commandsOf("default")[0] as string);
    await proc.waitForStdout(/Ctrl-C drains/);
    // The process a supervisor started is the one that binds the ports: nothing in between.
    const ready = JSON.parse((await proc.waitForStdout(/^\{.*"msg":"gateway ready".*\}$/m))[0]) as {
      pid?: number;
    };
    expect(ready.pid).toBe(proc.child.pid);
    // It runs with Bun's allocator tuned as docs/limits.md says.
    const environment = readFileSync(`/proc/${proc.child.pid}/environ`, "utf8").split("\0");
    expect(environment).toContain("MIMALLOC_PURGE_DELAY=1000");
    expect(environment).toContain("MIMALLOC_PURGE_HOLES=0");
    if (target === "process") proc.child.kill(signal);
    else proc.signal(signal);
    expect(await exitCode(proc, 30_000)).toBe(0);
    expect(proc.stdout()).toContain(`"signal":"${signal}"`);
    expect(proc.stdout()).toContain('"msg":"stopped"');
    await expectPortsFree();
  });

  test("readme.help.and.validate", { timeout: 60_000 }, async () => {
    for (const command of commandsOf("help")) {
      const result = await runAsWritten(command);
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      expect(result.stdout).toMatch(/^usage: gateway/);
    }
    for (const command of commandsOf("validate")) {
      const result = await runAsWritten(command);
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      expect(result.stdout).toContain("kafka 127.0.0.1:9092");
      expect(result.stdout).toContain("  listen 0.0.0.0:7151 h2c");
    }
  });

  test.each(commandsOf("other-example"))("readme.%s", { timeout: 120_000 }, async (command) => {
    const proc = startAsWritten(command);
    await proc.waitForStdout(/Ctrl-C drains/);
    proc.child.kill("SIGTERM");
    expect(await exitCode(proc, 30_000)).toBe(0);
    await expectPortsFree();
  });

  test.each(commandsOf("runtime"))("readme.%s", { timeout: 240_000 }, async (command) => {
    // Node may build dist/ first: no other file rewrites it until this one has loaded.
    const proc = await withDistLock(async () => {
      const started = startAsWritten(command);
      await started.waitForStdout(/Ctrl-C drains/, 200_000);
      return started;
    });
    await callPrintedCommands(proc);
    proc.child.kill("SIGTERM");
    expect(await exitCode(proc, 30_000)).toBe(0);
    await expectPortsFree();
  });
});
