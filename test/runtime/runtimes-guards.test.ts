// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are zilla.yaml text, whose ${...} are not JavaScript
/**
 * The guarded example under Bun and Deno (Node runs every other guard scenario in-process):
 * each runtime starts examples/grpc.kafka.proxy.jwt, refuses a call without a token and takes
 * one with a token. Bun also runs it with mutual TLS added on its TLS port: it names a client
 * by its certificate (the upstream sees the identity as metadata) and refuses the certificate
 * route to a client that sent none. Deno's TLS server cannot verify client certificates, so
 * there the mutual TLS config is refused at load with a clear error (exit 2).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { importPKCS8, SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import {
  bin,
  exampleKeystorePassword,
  type GatewayProcess,
  type Runtime,
  repoRoot,
  run,
  spawnCli,
  writeExampleCertificate,
} from "../support/gateway-process.ts";
import {
  createTestCa,
  type IssuedCertificate,
  issueClientCertificate,
} from "../support/test-ca.ts";

const exampleDir = join(repoRoot, "examples/grpc.kafka.proxy.jwt");
let dir: string;
let serverCa: Buffer;
let client: IssuedCertificate;
let echo: EchoServer;
const running: GatewayProcess[] = [];
const brokers: Broker[] = [];

function replaceOnce(text: string, from: string, to: string): string {
  if (!text.includes(from))
    throw new Error(`the example no longer contains ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "runtimes-guards-"));
  for (const sub of ["proto", "tls"]) mkdirSync(join(dir, sub));
  copyFileSync(join(exampleDir, "proto/echo.proto"), join(dir, "proto/echo.proto"));
  copyFileSync(join(exampleDir, "tls/localhost.p12"), join(dir, "tls/localhost.p12"));
  const ca = createTestCa(dir, "ca", "/CN=Runtime Client CA");
  client = issueClientCertificate(dir, "ca", "client", "/O=Acme/CN=client-7");
  writeFileSync(join(dir, "tls/clients.pem"), ca.cert);
  writeExampleCertificate(join(dir, "localhost.crt"));
  serverCa = readFileSync(join(dir, "localhost.crt"));
  const identity = "$" + "{guarded['certs'].identity}";
  // The example, plus mutual TLS on its TLS port and a route for certificate holders.
  let yaml = readFileSync(join(exampleDir, "zilla.yaml"), "utf8");
  yaml = replaceOnce(
    yaml,
    "        password: ${{env.KEYSTORE_PASSWORD}}\n",
    "        password: ${{env.KEYSTORE_PASSWORD}}\n      trust:\n        store: tls/clients.pem\n        type: pem\n",
  );
  yaml = replaceOnce(
    yaml,
    "      challenge: 30\n",
    "      challenge: 30\n  certs:\n    type: x509\n    options:\n      identity: subject.cn\n",
  );
  yaml = replaceOnce(
    yaml,
    "      alpn:\n        - h2\n",
    "      alpn:\n        - h2\n      trust:\n        - Runtime Client CA\n      mutual: requested\n      authorization:\n        certs:\n          credentials:\n            certificates: pem\n",
  );
  yaml = replaceOnce(
    yaml,
    "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        guarded:\n",
    `    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/UnaryEcho\n            metadata:\n              via: cert\n        guarded:\n          certs: []\n        exit: north_kafka_cache_client\n        with:\n          capability: produce\n          topic: echo-requests\n          acks: leader_only\n          overrides:\n            meta:x-caller: ${identity}\n          reply-to: echo-responses\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        guarded:\n`,
  );
  writeFileSync(join(dir, "zilla-mtls.yaml"), yaml);
  copyFileSync(join(exampleDir, "zilla.yaml"), join(dir, "zilla.yaml"));
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
}, 60_000);

afterEach(async () => {
  for (const proc of running.splice(0)) await proc.kill();
  for (const broker of brokers.splice(0)) await broker.close();
});

afterAll(async () => {
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function exampleToken(sub: string): Promise<string> {
  const pem = readFileSync(join(exampleDir, "jwt/private-rs256.pem"), "utf8");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: "echo:call" })
    .setProtectedHeader({ alg: "RS256", kid: "example" })
    .setIssuer("https://auth.example.com")
    .setAudience("https://api.example.com")
    .setSubject(sub)
    .setExpirationTime(now + 300)
    .sign(await importPKCS8(pem, "RS256"));
}

async function codeOf(call: Promise<unknown>): Promise<Code | 0> {
  try {
    await call;
    return 0;
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

const env = () => ({
  KEYSTORE_PASSWORD: exampleKeystorePassword,
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: String(echo.port),
});

describe("guards on other runtimes", () => {
  test.each(["bun", "deno"] as Runtime[])("guards.%s", { timeout: 60_000 }, async (runtime) => {
    const mutual = runtime !== "deno";
    const broker = await startBroker({ port: 0 });
    brokers.push(broker);
    const config = join(dir, mutual ? "zilla-mtls.yaml" : "zilla.yaml");
    const proc = spawnCli(
      runtime,
      [
        "start",
        "--config",
        config,
        "--kafka-servers",
        broker.bootstrap,
        "--ephemeral-ports",
        "--ops-port",
        "0",
      ],
      env(),
    );
    running.push(proc);
    const ready = await proc.ready(45_000);
    const [h2cPort, tlsPort] = ready.north[0] ?? [];

    const plain = createClient(
      Echo,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${h2cPort}` }),
    );
    expect(await codeOf(plain.unaryEcho({ message: "no token" }))).toBe(Code.Unauthenticated);
    const token = await exampleToken(`${runtime}-user`);
    const reply = await plain.unaryEcho(
      { message: `token on ${runtime}` },
      { headers: { authorization: `Bearer ${token}` } },
    );
    expect(reply.message).toBe(`token on ${runtime}`);
    if (!mutual) return;

    const tls = (withCertificate: boolean) =>
      createClient(
        Echo,
        createGrpcTransport({
          baseUrl: `https://127.0.0.1:${tlsPort}`,
          nodeOptions: {
            ca: serverCa,
            servername: "localhost",
            ...(withCertificate ? { cert: client.cert, key: client.key } : {}),
          },
        }),
      );
    let caller: string | null = null;
    const certified = await tls(true).unaryEcho(
      { message: `meta: cert on ${runtime}` },
      { headers: { via: "cert" }, onHeader: (h) => (caller = h.get("x-caller")) },
    );
    expect(certified.message).toBe(`meta: cert on ${runtime}`);
    expect(caller).toBe("client-7");
    expect(
      await codeOf(tls(false).unaryEcho({ message: "no cert" }, { headers: { via: "cert" } })),
    ).toBe(Code.Unauthenticated);
  });

  test("guards.deno.refuses.mutual.tls", { timeout: 60_000 }, async () => {
    const result = await run(
      bin("deno"),
      [
        "run",
        "-A",
        "--sloppy-imports",
        "src/cli.ts",
        "validate",
        "--config",
        join(dir, "zilla-mtls.yaml"),
        "--kafka-servers",
        "127.0.0.1:9092",
      ],
      { env: env() },
    );
    expect(result.code).toBe(2);
    expect(result.stderr + result.stdout).toMatch(
      /bindings\.north_tls_server\.options\.mutual: client certificates \(mutual: requested\) cannot be verified on deno .*; run the gateway on Node or Bun for mutual TLS/,
    );
  });
});
