/**
 * Mutual TLS on the north TLS listener, with a test CA made by openssl: `mutual: required`
 * refuses a handshake without a client certificate from the trusted CA; `mutual: requested`
 * lets a client without one in (to unguarded routes only) but refuses one from another CA;
 * the x509 guard names the caller after its certificate, gives it roles from certificate
 * fields, and its subject lands in the request record like a JWT's identity.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { createSelfSignedCertificate } from "../../src/config/self-signed.ts";
import { createTestCa, issueClientCertificate } from "../support/test-ca.ts";
import {
  header,
  type NorthFixture,
  replyTopic,
  requestTopic,
  startNorthFixture,
} from "./north-fixture.ts";

let dir: string;
let fx: NorthFixture;
let server: { cert: string; key: string };
let requiredPort: number;
let requestedPort: number;
const pem: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "north-mtls-"));
  const ca = createTestCa(dir, "ca", "/CN=Test Client CA");
  createTestCa(dir, "other-ca", "/CN=Other CA");
  const issued = {
    client: issueClientCertificate(dir, "ca", "client", "/O=Acme/CN=client-1"),
    outsider: issueClientCertificate(dir, "other-ca", "outsider", "/O=Evil/CN=client-2"),
    service: issueClientCertificate(dir, "ca", "service", "/O=Acme/CN=batch-job"),
  };
  pem["ca.pem"] = ca.cert;
  for (const [name, { cert, key }] of Object.entries(issued)) {
    pem[`${name}.pem`] = cert;
    pem[`${name}.key`] = key;
  }
  server = createSelfSignedCertificate("localhost");
  const identity = "$" + "{guarded['certs'].identity}";
  fx = await startNorthFixture((config) => {
    const tls = {
      cert: server.cert,
      key: server.key,
      ca: [pem["ca.pem"] ?? ""],
      authorization: { guard: "certs" },
    };
    config.listeners = [
      { host: "127.0.0.1", port: 0, tls: { ...tls, mutual: "required" } },
      { host: "127.0.0.1", port: 0, tls: { ...tls, mutual: "requested" } },
    ];
    config.guards = {
      certs: {
        type: "x509",
        name: "certs",
        identity: "subject.cn",
        attributes: { org: "subject.o", dn: "subject.dn" },
        roles: { client: [{ "issuer.cn": "Test Client CA", "subject.cn": "client-*" }] },
      },
    };
    const produce = {
      capability: "produce" as const,
      topic: requestTopic,
      acks: "leader_only" as const,
      replyTo: replyTopic,
    };
    config.routes = [
      {
        when: [{ method: "grpc.examples.echo.Echo/*" }],
        guarded: [{ guard: "certs", roles: ["client"] }],
        with: {
          ...produce,
          key: identity,
          overrides: {
            "meta:x-client": identity,
            "meta:x-org": "$" + "{guarded['certs'].attributes.org}",
            "meta:x-dn": "$" + "{guarded['certs'].attributes.dn}",
          },
        },
      },
      {
        when: [{ method: "grpc.examples.echo.Echo/UnaryEcho", metadata: { public: "yes" } }],
        with: { ...produce, overrides: { "x-tier": "public" } },
      },
    ];
  });
  [requiredPort = 0, requestedPort = 0] = fx.north.ports;
}, 60_000);

afterAll(async () => {
  await fx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function clientOn(port: number, who?: "client" | "outsider" | "service") {
  return createClient(
    Echo,
    createGrpcTransport({
      baseUrl: `https://localhost:${port}`,
      nodeOptions: {
        ca: server.cert,
        ...(who ? { cert: pem[`${who}.pem`], key: pem[`${who}.key`] } : {}),
      },
    }),
  );
}

async function statusOf(call: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await call;
    return { code: 0, message: "" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
}

/** Whether a TLS handshake with these client credentials completes. */
function handshake(port: number, who?: "client" | "outsider"): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`https://localhost:${port}`, {
      ca: server.cert,
      ...(who ? { cert: pem[`${who}.pem`], key: pem[`${who}.key`] } : {}),
    });
    const request = () => {
      const req = session.request({ ":path": "/grpc.health.v1.Health/Check", ":method": "GET" });
      req.on("response", () => {
        resolve("ok");
        session.close();
      });
      req.on("error", (e) => resolve(`error:${e.message}`));
      req.end();
    };
    session.on("connect", request);
    session.on("error", (e) => resolve(`error:${e.message}`));
    session.on("close", () => resolve("error:closed"));
  });
}

describe("mutual tls", () => {
  test("required.refuses.a.client.without.a.trusted.certificate", async () => {
    expect(await handshake(requiredPort)).toMatch(/^error:/);
    expect(await handshake(requiredPort, "outsider")).toMatch(/^error:/);
    expect(await handshake(requiredPort, "client")).toBe("ok");
  });

  test("the.certificate.subject.is.the.identity.in.the.record", async () => {
    const reply = await clientOn(requiredPort, "client").unaryEcho(
      { message: "from client-1" },
      { headers: { "x-client": "forged" } },
    );
    expect(reply.message).toBe("from client-1");
    const record = await fx.responder.waitFor(
      (r) => r.value?.toString().includes("from client-1") === true,
    );
    expect(record.key).toBe("client-1");
    expect(record.headers.filter(([n]) => n === "meta:x-client")).toEqual([
      ["meta:x-client", "client-1"],
    ]);
    expect(header(record.headers, "meta:x-org")).toBe("Acme");
    expect(header(record.headers, "meta:x-dn")).toBe("cn=client-1,o=acme");
  });

  test("roles.come.from.certificate.fields", async () => {
    // Signed by the trusted CA, but its CN does not match client-*: no role.
    const status = await statusOf(
      clientOn(requiredPort, "service").unaryEcho({ message: "batch job" }),
    );
    expect(status.code).toBe(Code.PermissionDenied);
    expect(status.message).toMatch(/lacks role client/);
  });

  test("requested.lets.a.client.without.a.certificate.reach.unguarded.routes.only", async () => {
    const anonymous = clientOn(requestedPort);
    const open = await anonymous.unaryEcho(
      { message: "anonymous" },
      { headers: { public: "yes" } },
    );
    expect(open.message).toBe("anonymous");
    const guarded = await statusOf(anonymous.unaryEcho({ message: "anonymous guarded" }));
    expect(guarded.code).toBe(Code.Unauthenticated);
    expect(guarded.message).toMatch(/no client certificate/);
    const withCertificate = await clientOn(requestedPort, "client").unaryEcho({
      message: "requested ok",
    });
    expect(withCertificate.message).toBe("requested ok");
    // A certificate from a CA it does not trust is refused, even though one is optional.
    expect(await handshake(requestedPort, "outsider")).toMatch(/^error:/);
  });
});
