/**
 * TLS listeners: PEM or PKCS#12 credentials, ALPN h2 (and http/1.1 for gRPC-Web/Connect),
 * and the SNI check when server names are listed. Certificates are made with openssl.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type NorthFixture, startNorthFixture } from "./north-fixture.ts";

let dir: string;
let cert: string;
let fx: NorthFixture;
let sniPort: number;
let pfxPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "north-tls-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  const pfxPath = join(dir, "keystore.p12");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,DNS:echo.example.com,IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  execFileSync(
    "openssl",
    [
      "pkcs12",
      "-export",
      "-inkey",
      keyPath,
      "-in",
      certPath,
      "-out",
      pfxPath,
      "-passout",
      "pass:generated",
    ],
    { stdio: "ignore" },
  );
  cert = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  const pfx = new Uint8Array(readFileSync(pfxPath));
  fx = await startNorthFixture((config) => {
    config.listeners.push(
      { host: "127.0.0.1", port: 0, tls: { cert, key, sni: ["localhost", "*.example.com"] } },
      { host: "127.0.0.1", port: 0, tls: { pfx, passphrase: "generated" } },
    );
  });
  [, sniPort = 0, pfxPort = 0] = fx.north.ports;
});

afterAll(async () => {
  await fx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Opens a TLS HTTP/2 session and reports the negotiated ALPN protocol, or the error. */
function handshake(port: number, servername?: string): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca: cert,
      ...(servername ? { servername } : {}),
    });
    session.on("connect", () => {
      resolve(`ok:${session.alpnProtocol}`);
      session.close();
    });
    session.on("error", (e) => resolve(`error:${e.message}`));
  });
}

describe("north tls", () => {
  test("tls.alpn.h2", async () => {
    const client = createClient(
      Echo,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${sniPort}`,
        nodeOptions: { ca: cert, servername: "localhost" },
      }),
    );
    expect((await client.unaryEcho({ message: "over tls" })).message).toBe("over tls");
    expect(await handshake(sniPort, "localhost")).toBe("ok:h2");
  });

  test("tls.http1.connect", async () => {
    const client = createClient(
      Echo,
      createConnectTransport({
        baseUrl: `https://127.0.0.1:${pfxPort}`,
        httpVersion: "1.1",
        nodeOptions: { ca: cert, servername: "localhost" },
      }),
    );
    expect((await client.unaryEcho({ message: "connect over tls 1.1" })).message).toBe(
      "connect over tls 1.1",
    );
  });

  test("tls.pkcs12.keystore", async () => {
    const client = createClient(
      Echo,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${pfxPort}`,
        nodeOptions: { ca: cert, servername: "localhost" },
      }),
    );
    expect((await client.unaryEcho({ message: "pkcs12" })).message).toBe("pkcs12");
    // No names listed: any server name (or none) is served.
    expect(await handshake(pfxPort)).toBe("ok:h2");
  });

  test("tls.sni.checked", async () => {
    expect(await handshake(sniPort, "echo.example.com")).toBe("ok:h2");
    expect(await handshake(sniPort, "other.test")).toMatch(/^error:/);
    // Names are listed, so a handshake without one is refused too.
    expect(await handshake(sniPort)).toMatch(/^error:/);
  });
});
