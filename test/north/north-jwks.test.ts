/**
 * A jwt guard with no inline keys fetches the issuer's `.well-known/jwks.json` from a local
 * HTTP server: once, then from its cache; again for a token whose kid it does not know (key
 * rotation); and when the server is down, hangs, or answers garbage, calls fail closed with
 * UNAUTHENTICATED while the gateway keeps serving everything else, until the keys are back.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { JwtGuardConfig, NorthConfig } from "../../src/config/types.ts";
import type { North } from "../../src/north/north-server.ts";
import { audience, createTestIssuer, type TestIssuer } from "../support/tokens.ts";
import {
  exampleNorthConfig,
  type NorthFixture,
  replyTopic,
  requestTopic,
  startNorthFixture,
  startTestNorth,
} from "./north-fixture.ts";

interface JwksServer {
  url: string;
  port: number;
  /** Keys served now (replace to rotate). */
  keys: TestIssuer["jwk"][];
  /** GET requests for the key set so far. */
  fetches: number;
  /** What the server does: answer, never answer, or answer with a non-JWKS body. */
  mode: "answer" | "hang" | "garbage";
  close(): Promise<void>;
}

async function startJwksServer(port = 0): Promise<JwksServer> {
  const server = http.createServer((req, res) => {
    if (req.url !== "/.well-known/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    jwks.fetches++;
    if (jwks.mode === "hang") return;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(jwks.mode === "garbage" ? "<html>" : JSON.stringify({ keys: jwks.keys }));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const bound = (server.address() as AddressInfo).port;
  const jwks: JwksServer = {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    keys: [],
    fetches: 0,
    mode: "answer",
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return jwks;
}

/** A port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const guarded = (config: NorthConfig, issuer: string) => {
  const listener = config.listeners[0];
  if (listener) {
    listener.authorization = {
      guard: "jwt0",
      credentials: { headers: { authorization: "Bearer {credentials}" } },
    };
  }
  const guard: JwtGuardConfig = {
    type: "jwt",
    name: "jwt0",
    issuer,
    audience,
    roles: "scope",
    identity: "sub",
    attributes: {},
    keysUrl: `${issuer}/.well-known/jwks.json`,
  };
  config.guards = { jwt0: guard };
  const produce = {
    capability: "produce" as const,
    topic: requestTopic,
    acks: "leader_only" as const,
    replyTo: replyTopic,
  };
  config.routes = [
    {
      when: [{ method: "grpc.examples.echo.Echo/*" }],
      guarded: [{ guard: "jwt0", roles: [] }],
      with: produce,
    },
    {
      when: [{ method: "grpc.examples.echo.Echo/UnaryEcho", metadata: { public: "yes" } }],
      with: produce,
    },
  ];
};

let jwks: JwksServer;
let first: TestIssuer;
let rotated: TestIssuer;
let fx: NorthFixture;

beforeAll(async () => {
  [first, rotated] = await Promise.all([
    createTestIssuer("ES256", "jwks-1"),
    createTestIssuer("RS256", "jwks-2"),
  ]);
  jwks = await startJwksServer();
  jwks.keys = [first.jwk];
  fx = await startNorthFixture((c) => guarded(c, jwks.url), "west", {
    guardOptions: { unknownKidCooldownMs: 0, failedFetchRetryMs: 0, fetchTimeoutMs: 300 },
  });
}, 60_000);

afterAll(async () => {
  await fx?.close();
  await jwks?.close();
});

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

async function statusOf(call: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await call;
    return { code: 0, message: "" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
}

describe("keys from the issuer's JWKS", () => {
  test("fetched.once.then.cached", async () => {
    for (const n of [1, 2, 3]) {
      const token = await first.mint({ iss: jwks.url, sub: `user-${n}` });
      const reply = await fx.client.unaryEcho({ message: `cached ${n}` }, bearer(token));
      expect(reply.message).toBe(`cached ${n}`);
    }
    expect(jwks.fetches).toBe(1);
  });

  test("an.unknown.kid.fetches.the.rotated.set", async () => {
    jwks.keys = [first.jwk, rotated.jwk];
    const token = await rotated.mint({ iss: jwks.url, sub: "rotated" });
    const reply = await fx.client.unaryEcho({ message: "rotated key" }, bearer(token));
    expect(reply.message).toBe("rotated key");
    expect(jwks.fetches).toBe(2);
    const unknown = await first.mint({ iss: jwks.url, sub: "x" }, { kid: "jwks-9" });
    const status = await statusOf(fx.client.unaryEcho({ message: "unknown" }, bearer(unknown)));
    expect(status.code).toBe(Code.Unauthenticated);
    expect(status.message).toMatch(/unknown kid "jwks-9"/);
  });
});

describe("keys unavailable", () => {
  let north: North | undefined;
  let down: JwksServer | undefined;

  afterAll(async () => {
    await north?.close(500);
    await down?.close();
  });

  test("fail.closed.while.the.gateway.stays.up", async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const config = exampleNorthConfig();
    guarded(config, issuer);
    const started = await startTestNorth(fx.broker.bootstrap, config, undefined, {
      guardOptions: { failedFetchRetryMs: 0, fetchTimeoutMs: 300 },
    });
    north = started.north;
    const client = started.client;
    const token = await first.mint({ iss: issuer, sub: "kim" });

    // Nothing listens on the issuer's port.
    const refused = await statusOf(client.unaryEcho({ message: "no keys" }, bearer(token)));
    expect(refused.code).toBe(Code.Unauthenticated);
    expect(refused.message).toMatch(
      /keys unavailable \(http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json/,
    );
    // Everything not guarded still works.
    const open = await client.unaryEcho({ message: "still up" }, { headers: { public: "yes" } });
    expect(open.message).toBe("still up");

    // A server that answers garbage, then one that never answers: still closed.
    down = await startJwksServer(port);
    down.mode = "garbage";
    const garbage = await statusOf(client.unaryEcho({ message: "garbage" }, bearer(token)));
    expect(garbage.code).toBe(Code.Unauthenticated);
    expect(garbage.message).toMatch(/keys unavailable/);
    down.mode = "hang";
    const hung = await statusOf(client.unaryEcho({ message: "hung" }, bearer(token)));
    expect(hung.code).toBe(Code.Unauthenticated);
    expect(hung.message).toMatch(/keys unavailable .*timed out/);

    // The keys come back: the next call goes through.
    down.mode = "answer";
    down.keys = [first.jwk];
    const reply = await client.unaryEcho({ message: "keys back" }, bearer(token));
    expect(reply.message).toBe("keys back");
  }, 30_000);
});
