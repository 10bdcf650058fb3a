/**
 * Attacks on connections, against the example run by the CLI under Bun and under Node with
 * small limits (docs/limits.md, docs/security.md), each while a normal call (`buf curl`, an
 * independent client) still gets its answer:
 * - slow.silent.connections: TCP only, preface only, one byte at a time, half a HEADERS frame,
 *   TLS without a ClientHello are all closed at the handshake timeout;
 * - idle.connection.goaway: a connection with no call gets GOAWAY(NO_ERROR) at the idle timeout;
 * - keepalive.ping.unanswered: a client that stops answering PINGs is cut;
 * - connection.cap: past --max-connections new connections are closed at once, open ones
 *   keep working, /readyz is 503 with the reason, and 200 again once they are gone;
 * - ops.routes.off.public.ports (and back on with --ops-on-public-ports, --ops-host);
 * - tls.policy: TLS 1.2 only with ECDHE + AEAD suites, TLS 1.3, --tls-min-version;
 * - tls.no.alpn: with `alpn: [h2]`, a client offering no ALPN gets HTTP/2, or is refused
 *   (HTTP/1.1 gets no answer; a client offering only http/1.1 fails the handshake).
 */
import { execFile } from "node:child_process";
import http2 from "node:http2";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import {
  connectRawHttp2,
  encodeFrame,
  frameType,
  grpcMessage,
  grpcRequestHeaders,
  preface,
  settingsFrame,
} from "../support/raw-http2.ts";
import {
  allClosed,
  bufCurlEcho,
  buildForNode,
  type EdgeGateway,
  type EdgeRuntime,
  grpcCall,
  httpGet,
  openSocket,
  removeBuild,
  startEdgeGateway,
} from "./edge-gateway.ts";

let broker: Broker;
let echo: EchoServer;
let nodeBuild: string | undefined;

beforeAll(async () => {
  nodeBuild = await buildForNode();
  broker = await startBroker({ port: 0 });
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
}, 180_000);

afterAll(async () => {
  await echo?.close();
  await broker?.close();
  removeBuild(nodeBuild);
});

const start = (runtime: EdgeRuntime, flags: string[]) =>
  startEdgeGateway(runtime, {
    bootstrap: broker.bootstrap,
    echoPort: echo.port,
    ...(nodeBuild ? { nodeBuild } : {}),
    flags,
  });

/** `openssl s_client` against `port` (SNI localhost) with `args`: what it printed. */
function opensslConnect(port: number, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      "openssl",
      ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", ...args],
      { timeout: 10_000 },
      (_error, stdout, stderr) => resolve(`${stdout}${stderr}`),
    );
    child.stdin?.end();
  });
}

/** The cipher a handshake agreed on, or undefined when it failed. */
async function negotiatedCipher(port: number, args: string[]): Promise<string | undefined> {
  const out = await opensslConnect(port, args);
  const cipher = /Cipher is (\S+)/.exec(out)?.[1];
  return cipher === "(NONE)" ? undefined : cipher;
}

describe.each(["bun", "node"] as EdgeRuntime[])("edge connections on %s", (runtime) => {
  let gateway: EdgeGateway;

  beforeAll(async () => {
    gateway = await start(runtime, [
      "--handshake-timeout-ms",
      "600",
      "--idle-timeout-ms",
      "1500",
      "--keepalive-ms",
      "400",
      "--keepalive-timeout-ms",
      "600",
    ]);
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
  });

  test("slow.silent.connections", { timeout: 30_000 }, async () => {
    const port = gateway.h2cPort;
    const halfHeaders = encodeFrame(frameType.headers, 0x4, 1, Buffer.alloc(200)).subarray(0, 40);
    const attackers = await Promise.all([
      ...Array.from({ length: 20 }, () => openSocket(port)),
      ...Array.from({ length: 20 }, () => openSocket(port, preface)),
      ...Array.from({ length: 20 }, () =>
        openSocket(port, Buffer.concat([preface, settingsFrame(), halfHeaders])),
      ),
      ...Array.from({ length: 20 }, () => openSocket(gateway.tlsPort)),
    ]);
    // One byte at a time: never a whole preface within the timeout.
    const tricklers = await Promise.all(Array.from({ length: 10 }, () => openSocket(port)));
    let sent = 0;
    const trickle = setInterval(() => {
      for (const t of tricklers)
        if (!t.isClosed()) t.socket.write(preface.subarray(sent, sent + 1));
      sent = (sent + 1) % preface.length;
    }, 100);
    try {
      expect(await bufCurlEcho(port, `normal call during the attack on ${runtime}`)).toBe(
        `normal call during the attack on ${runtime}`,
      );
      await allClosed([...attackers, ...tricklers], 10_000);
    } finally {
      clearInterval(trickle);
      for (const s of [...attackers, ...tricklers]) s.socket.destroy();
    }
  });

  test("idle.connection.goaway", { timeout: 20_000 }, async () => {
    const session = http2.connect(`http://127.0.0.1:${gateway.h2cPort}`);
    session.on("error", () => {});
    const goaway = new Promise<number>((resolve) =>
      session.once("goaway", (code) => resolve(code)),
    );
    const closed = new Promise<void>((resolve) => session.once("close", resolve));
    const reply = await grpcCall(session, "UnaryEcho", ["before going idle"]);
    expect(reply).toMatchObject({ status: 0, replies: ["before going idle"] });
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await closed;
  });

  test("keepalive.ping.unanswered", { timeout: 20_000 }, async () => {
    const client = await connectRawHttp2(gateway.h2cPort, { answerPings: false });
    await client.waitFor((f) => f.type === frameType.settings);
    // A call that stays open (the stream idle timeout is the default 5 minutes here).
    client.headers(1, grpcRequestHeaders("/grpc.examples.echo.Echo/BidirectionalStreamingEcho"));
    await client.waitFor((f) => f.type === frameType.ping && f.flags === 0);
    await client.closed;
    expect(client.frames.some((f) => f.type === frameType.ping)).toBe(true);
  });

  test("connection.cap", { timeout: 60_000 }, async () => {
    const capped = await start(runtime, [
      "--max-connections",
      "8",
      "--handshake-timeout-ms",
      "30000",
    ]);
    try {
      const session = http2.connect(`http://127.0.0.1:${capped.h2cPort}`);
      session.on("error", () => {});
      expect((await grpcCall(session, "UnaryEcho", ["first"])).replies).toEqual(["first"]);
      const silent = await Promise.all(Array.from({ length: 7 }, () => openSocket(capped.h2cPort)));
      await expect
        .poll(async () => httpGet(capped.opsPort, "/readyz"), { timeout: 10_000 })
        .toMatchObject({ status: 503, body: expect.stringContaining("connection cap") });
      // Past the cap: closed at once, never left hanging.
      const refused = await Promise.all(
        Array.from({ length: 20 }, () => openSocket(capped.h2cPort)),
      );
      await allClosed(refused, 5_000);
      // The connections already open are still served.
      expect((await grpcCall(session, "UnaryEcho", ["still served"])).replies).toEqual([
        "still served",
      ]);
      for (const s of silent) s.socket.destroy();
      await expect
        .poll(async () => (await httpGet(capped.opsPort, "/readyz")).status, { timeout: 10_000 })
        .toBe(200);
      session.close();
    } finally {
      await capped.stop();
    }
  });

  test("ops.routes.off.public.ports", { timeout: 60_000 }, async () => {
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      expect((await httpGet(gateway.h2cPort, path)).status, path).toBe(404);
      expect((await httpGet(gateway.opsPort, path)).status, path).toBe(200);
    }
    // Put back on request, and the ops port on an address of choice.
    const open = await start(runtime, ["--ops-on-public-ports", "--ops-host", "127.0.0.2"]);
    try {
      const metrics = await httpGet(open.h2cPort, "/metrics");
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain("# HELP");
      expect((await fetch(`http://127.0.0.2:${open.opsPort}/healthz`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${open.opsPort}/healthz`)).rejects.toThrow();
    } finally {
      await open.stop();
    }
  });

  test("tls.policy", { timeout: 60_000 }, async () => {
    const port = gateway.tlsPort;
    expect(await negotiatedCipher(port, ["-tls1_2"])).toMatch(
      /^ECDHE-(RSA|ECDSA)-.*(GCM|CHACHA20)/,
    );
    // No forward secrecy, or CBC: refused.
    expect(
      await negotiatedCipher(port, ["-tls1_2", "-cipher", "AES128-GCM-SHA256"]),
    ).toBeUndefined();
    expect(
      await negotiatedCipher(port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"]),
    ).toBeUndefined();
    expect(await negotiatedCipher(port, ["-tls1_1"])).toBeUndefined();
    expect(await negotiatedCipher(port, ["-tls1_3"])).toMatch(/^TLS_/);
    expect(await bufCurlEcho(gateway.h2cPort, "normal call")).toBe("normal call");

    const strict = await start(runtime, ["--tls-min-version", "TLSv1.3"]);
    try {
      expect(await negotiatedCipher(strict.tlsPort, ["-tls1_2"])).toBeUndefined();
      expect(await negotiatedCipher(strict.tlsPort, ["-tls1_3"])).toMatch(/^TLS_/);
    } finally {
      await strict.stop();
    }
  });

  test("tls.no.alpn", { timeout: 30_000 }, async () => {
    const noAlpn = { servername: "localhost", rejectUnauthorized: false };
    // HTTP/2 without ALPN: served.
    const h2 = await connectRawHttp2(gateway.tlsPort, { tls: noAlpn });
    expect(h2.socket instanceof tls.TLSSocket && h2.socket.alpnProtocol).toBe(false);
    h2.headers(1, grpcRequestHeaders("/grpc.examples.echo.Echo/UnaryEcho"));
    h2.data(1, grpcMessage(new Uint8Array([0x0a, 0x02, 0x68, 0x69])), true);
    const response = await h2.waitFor((f) => f.streamId === 1 && f.type === frameType.headers);
    expect(response.streamId).toBe(1);
    h2.close();
    // HTTP/1.1 without ALPN, where the config says h2: refused (no HTTP/1.1 answer).
    const h1 = tls.connect({ port: gateway.tlsPort, host: "127.0.0.1", ...noAlpn });
    h1.on("error", () => {});
    let answer = "";
    h1.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    await new Promise<void>((resolve) => h1.once("secureConnect", resolve));
    h1.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
    await new Promise<void>((resolve) => h1.once("close", resolve));
    expect(answer).not.toContain("HTTP/1.1");
    // A client that offers only http/1.1 fails the handshake.
    expect(await opensslConnect(gateway.tlsPort, ["-alpn", "http/1.1"])).toMatch(
      /no application protocol/i,
    );
  });
});
