/**
 * Who may call, over real sockets: a jwt guard with inline RS256 and ES256 keys on the
 * listener's `authorization` header, guarded routes that fall through to lower-privilege
 * ones, refusals with the codes and reasons a client can act on (native gRPC, gRPC-Web and
 * Connect alike), the caller's identity in the request record's headers and key (and from
 * there in the upstream's metadata), correlation ids scoped to the caller, streams ended when
 * their token expires (or at the guard's challenge), and guards changed by a reload.
 */
import http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import type { GrpcKafkaRoute, JwtGuardConfig, NorthConfig } from "../../src/config/types.ts";
import { audience, createTestIssuer, issuer, type TestIssuer } from "../support/tokens.ts";
import {
  header,
  type NorthFixture,
  replyTopic,
  requestTopic,
  startNorthFixture,
} from "./north-fixture.ts";

const echoAll = "grpc.examples.echo.Echo/*";
/** Zilla's expressions, written as a zilla.yaml would (not JavaScript templates). */
const identity = "$" + "{guarded['jwt0'].identity}";
const tenant = "$" + "{guarded['jwt0'].attributes.tenant}";
let fx: NorthFixture;
let rs: TestIssuer;
let ec: TestIssuer;
let stranger: TestIssuer;
let config: NorthConfig;

const produce = (extra: Record<string, unknown>) => ({
  capability: "produce" as const,
  topic: requestTopic,
  acks: "leader_only" as const,
  replyTo: replyTopic,
  ...extra,
});

function guardConfig(keys: TestIssuer[], extra: Partial<JwtGuardConfig> = {}): JwtGuardConfig {
  return {
    type: "jwt",
    name: "jwt0",
    issuer,
    audience,
    roles: "scope",
    identity: "sub",
    attributes: { tenant: "tenant" },
    keys: keys.map((k) => k.jwk),
    ...extra,
  };
}

function routes(userRoles = ["echo:call"]): GrpcKafkaRoute[] {
  return [
    {
      when: [{ method: echoAll }],
      guarded: [{ guard: "jwt0", roles: ["echo:admin"] }],
      with: produce({
        overrides: {
          "x-tier": "admin",
          "meta:x-caller": identity,
          "meta:x-tenant": tenant,
        },
      }),
    },
    {
      when: [{ method: echoAll }],
      guarded: [{ guard: "jwt0", roles: userRoles }],
      with: produce({
        key: identity,
        overrides: { "x-tier": "user", "meta:x-caller": identity },
      }),
    },
    {
      when: [{ method: "grpc.examples.echo.Echo/UnaryEcho", metadata: { public: "yes" } }],
      with: produce({ overrides: { "x-tier": "public" } }),
    },
  ];
}

beforeAll(async () => {
  [rs, ec, stranger] = await Promise.all([
    createTestIssuer("RS256", "rs-1"),
    createTestIssuer("ES256", "ec-1"),
    createTestIssuer("RS256", "rs-1"), // same kid as rs, another key: a forged signature
  ]);
  fx = await startNorthFixture((c) => {
    const listener = c.listeners[0];
    if (listener) {
      listener.authorization = {
        guard: "jwt0",
        credentials: { headers: { authorization: "Bearer {credentials}" } },
      };
    }
    c.accessControl = { policy: "cross-origin" };
    c.guards = { jwt0: guardConfig([rs, ec]) };
    c.routes = routes();
    config = c;
  });
}, 60_000);

afterAll(async () => {
  await fx?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The gRPC status a call ended with (OK = 0). */
async function statusOf(call: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await call;
    return { code: 0, message: "" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
}

/** The request record carrying `text` (waits for it). */
const recordWith = (text: string) =>
  fx.responder.waitFor((r) => r.value?.toString("utf8").includes(text) === true);

describe("jwt guard", () => {
  test("unary.rpc.rs256.identity.in.headers.key.and.upstream.metadata", async () => {
    const token = await rs.mint({ sub: "alice", scope: "echo:call", tenant: "acme" });
    const reply = await fx.client.unaryEcho(
      { message: "rs256 from alice" },
      { headers: { ...bearer(token), "x-caller": "mallory", "x-other": "kept" } },
    );
    expect(reply.message).toBe("rs256 from alice");
    const record = await recordWith("rs256 from alice");
    expect(record.key).toBe("alice");
    expect(header(record.headers, "x-tier")).toBe("user");
    // The gateway's identity header, once: the client's own x-caller is dropped, and the
    // token never reaches Kafka.
    expect(record.headers.filter(([n]) => n === "meta:x-caller")).toEqual([
      ["meta:x-caller", "alice"],
    ]);
    expect(header(record.headers, "meta:x-other")).toBe("kept");
    expect(record.headers.some(([n]) => n === "meta:authorization")).toBe(false);
    // West passes meta:* headers upstream as metadata.
    const upstream = fx.echo?.requests.find((r) => r.messages.includes("rs256 from alice"));
    expect(upstream?.headers.get("x-caller")).toBe("alice");
    expect(upstream?.headers.get("authorization")).toBeNull();
  });

  test("unary.rpc.es256.admin.takes.the.first.route", async () => {
    const token = await ec.mint({ sub: "root", scope: "echo:admin echo:call", tenant: "ops" });
    await fx.client.unaryEcho({ message: "es256 admin" }, { headers: bearer(token) });
    const record = await recordWith("es256 admin");
    expect(header(record.headers, "x-tier")).toBe("admin");
    expect(header(record.headers, "meta:x-tenant")).toBe("ops");
    // The admin route has no key: the correlation id is the key.
    expect(record.key).toBe(header(record.headers, "zilla:correlation-id"));
  });

  test("refusals.say.why", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, Promise<string> | string, Code, RegExp]> = [
      [
        "no token",
        "",
        Code.Unauthenticated,
        /missing credentials: send header "authorization: Bearer <token>"/,
      ],
      [
        "expired",
        rs.mint({ sub: "a", scope: "echo:call", exp: now - 5 }),
        Code.Unauthenticated,
        /token expired/,
      ],
      [
        "wrong issuer",
        rs.mint({ sub: "a", scope: "echo:call", iss: "https://evil.example.com" }),
        Code.Unauthenticated,
        /wrong issuer/,
      ],
      [
        "wrong audience",
        rs.mint({ sub: "a", scope: "echo:call", aud: "https://other.example.com" }),
        Code.Unauthenticated,
        /wrong audience/,
      ],
      [
        "unknown kid",
        rs.mint({ sub: "a", scope: "echo:call" }, { kid: "rs-9" }),
        Code.Unauthenticated,
        /unknown kid "rs-9"/,
      ],
      [
        "bad signature",
        stranger.mint({ sub: "a", scope: "echo:call" }),
        Code.Unauthenticated,
        /bad signature/,
      ],
      ["malformed", "not-a-jwt", Code.Unauthenticated, /malformed token/],
      ["no sub", rs.mint({ scope: "echo:call" }), Code.Unauthenticated, /name no caller/],
      ["no roles", rs.mint({ sub: "a" }), Code.PermissionDenied, /lacks role echo:call/],
      [
        "other roles",
        rs.mint({ sub: "a", scope: "echo:read" }),
        Code.PermissionDenied,
        /lacks role echo:call/,
      ],
    ];
    for (const [what, pending, code, message] of cases) {
      const token = await pending;
      const headers = token === "" ? {} : bearer(token);
      const status = await statusOf(
        fx.client.unaryEcho({ message: `refused: ${what}` }, { headers }),
      );
      expect({ what, code: status.code }).toEqual({ what, code });
      expect(status.message).toMatch(message);
    }
    // None of them reached Kafka.
    expect(fx.responder.seen.some((r) => r.value?.toString().includes("refused:"))).toBe(false);
  });

  test("falls.through.to.an.unguarded.route", async () => {
    const reply = await fx.client.unaryEcho(
      { message: "public without a token" },
      { headers: { public: "yes" } },
    );
    expect(reply.message).toBe("public without a token");
    const record = await recordWith("public without a token");
    expect(header(record.headers, "x-tier")).toBe("public");
    // A caller with a valid token and the roles still takes the first route it may take.
    const token = await rs.mint({ sub: "alice", scope: "echo:call" });
    await fx.client.unaryEcho(
      { message: "public with a token" },
      { headers: { public: "yes", ...bearer(token) } },
    );
    expect(header((await recordWith("public with a token")).headers, "x-tier")).toBe("user");
  });

  test("idempotency.key.is.scoped.to.the.caller.on.guarded.routes", async () => {
    const [alice, bob] = await Promise.all([
      rs.mint({ sub: "alice", scope: "echo:call" }),
      rs.mint({ sub: "bob", scope: "echo:call" }),
    ]);
    const key = { "idempotency-key": `shared-${Date.now()}` };
    const a = await fx.client.unaryEcho(
      { message: "alice private" },
      { headers: { ...key, ...bearer(alice) } },
    );
    const b = await fx.client.unaryEcho(
      { message: "bob private" },
      { headers: { ...key, ...bearer(bob) } },
    );
    expect(a.message).toBe("alice private");
    expect(b.message).toBe("bob private");
    const [ra, rb] = await Promise.all([recordWith("alice private"), recordWith("bob private")]);
    const ida = header(ra.headers, "zilla:correlation-id") ?? "";
    const idb = header(rb.headers, "zilla:correlation-id") ?? "";
    expect(ida.startsWith(`${key["idempotency-key"]}-`)).toBe(true);
    expect(ida).not.toBe(idb);
    // Bob's message reached the upstream.
    expect(fx.echo?.requests.some((r) => r.messages.includes("bob private"))).toBe(true);

    // On an unguarded route the key is global: the second caller gets the first one's reply.
    const pub = { "idempotency-key": `public-${Date.now()}`, public: "yes" };
    const first = await fx.client.unaryEcho({ message: "first public" }, { headers: pub });
    const second = await fx.client.unaryEcho({ message: "second public" }, { headers: pub });
    expect(first.message).toBe("first public");
    expect(second.message).toBe("first public");
  });

  test("grpc.web.and.connect.get.the.same.codes", async () => {
    const good = await rs.mint({ sub: "carol", scope: "echo:call" });
    const roleless = await rs.mint({ sub: "carol" });
    for (const transport of [
      createGrpcWebTransport({ baseUrl: fx.url, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: fx.url, httpVersion: "2" }),
    ]) {
      const client = createClient(Echo, transport);
      const ok = await client.unaryEcho({ message: "web ok" }, { headers: bearer(good) });
      expect(ok.message).toBe("web ok");
      const missing = await statusOf(client.unaryEcho({ message: "web missing" }));
      expect(missing.code).toBe(Code.Unauthenticated);
      expect(missing.message).toMatch(/missing credentials/);
      const denied = await statusOf(
        client.unaryEcho({ message: "web denied" }, { headers: bearer(roleless) }),
      );
      expect(denied.code).toBe(Code.PermissionDenied);
    }
  });

  test("cors.preflight.needs.no.token", async () => {
    const response = await fetch(`${fx.url}/grpc.examples.echo.Echo/UnaryEcho`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  });

  test("bidi.stream.ends.unauthenticated.when.its.token.expires", async () => {
    const token = await rs.mint({
      sub: "dave",
      scope: "echo:call",
      exp: Math.floor(Date.now() / 1000) + 2,
    });
    const stream = requestQueue();
    stream.send("before expiry");
    const replies: string[] = [];
    const status = await statusOf(
      (async () => {
        for await (const r of fx.client.bidirectionalStreamingEcho(stream.messages(), {
          headers: bearer(token),
        })) {
          replies.push(r.message);
        }
      })(),
    );
    expect(replies).toEqual(["before expiry"]);
    expect(status.code).toBe(Code.Unauthenticated);
    expect(status.message).toMatch(/credentials expired during the call/);
    stream.end();
  });
});

describe("jwt guard reloaded", () => {
  test("reload.applies.new.keys.and.roles.to.new.calls", async () => {
    const rotated = await createTestIssuer("RS256", "rs-2");
    const next = structuredClone(config);
    next.guards = { jwt0: guardConfig([rs, ec, rotated]) };
    next.routes = routes(["echo:v2"]);
    fx.north.update(next);
    const old = await rs.mint({ sub: "erin", scope: "echo:call" });
    const denied = await statusOf(
      fx.client.unaryEcho({ message: "old role" }, { headers: bearer(old) }),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.message).toMatch(/lacks role echo:v2/);
    const fresh = await rotated.mint({ sub: "erin", scope: "echo:v2" });
    const reply = await fx.client.unaryEcho({ message: "new key" }, { headers: bearer(fresh) });
    expect(reply.message).toBe("new key");
  });

  test("challenge.ends.a.stream.before.expiry.unless.fresh.credentials.arrive", async () => {
    const next = structuredClone(config);
    next.guards = { jwt0: guardConfig([rs, ec], { challengeSeconds: 2 }) };
    fx.north.update(next);
    // One client (one HTTP/2 connection) per caller: sessions are shared per connection.
    const connection = () => createClient(Echo, createGrpcTransport({ baseUrl: fx.url }));
    const exp = () => Math.floor(Date.now() / 1000) + 4;

    // Not refreshed: the stream ends at the challenge, two seconds before the token expires.
    const lapsed = connection();
    const token = await rs.mint({ sub: "frank", scope: "echo:call", exp: exp() });
    const started = Date.now();
    const stream = requestQueue();
    stream.send("challenged");
    const status = await statusOf(
      (async () => {
        for await (const _ of lapsed.bidirectionalStreamingEcho(stream.messages(), {
          headers: bearer(token),
        })) {
          // replies are not the point here
        }
      })(),
    );
    expect(status.code).toBe(Code.Unauthenticated);
    expect(status.message).toMatch(/call again with fresh ones \(challenge 2 s\)/);
    expect(Date.now()).toBeLessThan(started + 4_000);
    stream.end();

    // Refreshed: another call on the same connection with a fresh token of the same caller
    // moves the session's expiry, and the stream lives past the first token's challenge.
    const kept = connection();
    const short = await rs.mint({ sub: "grace", scope: "echo:call", exp: exp() });
    const live = requestQueue();
    const replies: string[] = [];
    let ended: Promise<{ code: Code | 0; message: string }> | undefined;
    const firstReply = new Promise<void>((resolve) => {
      ended = statusOf(
        (async () => {
          for await (const r of kept.bidirectionalStreamingEcho(live.messages(), {
            headers: bearer(short),
          })) {
            replies.push(r.message);
            resolve();
          }
        })(),
      );
    });
    live.send("first");
    await firstReply;
    const long = await rs.mint({ sub: "grace", scope: "echo:call" });
    await kept.unaryEcho({ message: "refresh" }, { headers: bearer(long) });
    // Nothing happens for 2.5 s, past the first token's challenge time: the call stays open.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    live.send("still open");
    live.end();
    expect(await ended).toEqual({ code: 0, message: "" });
    expect(replies).toEqual(["first", "still open"]);
  }, 30_000);
});

describe("interop with independent clients", () => {
  test("buf.curl.with.a.bearer.token", async () => {
    fx.north.update(config);
    const { bufCurl } = await import("../support/buf-curl.ts");
    const token = await rs.mint({ sub: "henry", scope: "echo:call" });
    const ok = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `Authorization: Bearer ${token}`,
      "--data",
      '{"message":"from buf curl"}',
      `${fx.url}/grpc.examples.echo.Echo/UnaryEcho`,
    ]);
    expect(ok.messages).toEqual([{ message: "from buf curl" }]);
    const refused = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--data",
      '{"message":"no token"}',
      `${fx.url}/grpc.examples.echo.Echo/UnaryEcho`,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthenticated/);
    expect(refused.stderr).toMatch(/missing credentials/);
  });

  test("kcat.reads.the.identity.headers", async () => {
    const token = await rs.mint({ sub: "ivy", scope: "echo:call" });
    await fx.client.unaryEcho({ message: "for kcat" }, { headers: bearer(token) });
    await recordWith("for kcat");
    const { run } = await import("../support/gateway-process.ts");
    const out = await run("kcat", [
      "-C",
      "-J",
      "-e",
      "-q",
      "-o",
      "beginning",
      "-b",
      fx.broker.bootstrap,
      "-t",
      requestTopic,
    ]);
    const records = out.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map(
        (line) =>
          JSON.parse(line) as {
            key: string | null;
            headers: string[] | null;
            payload: string | null;
          },
      );
    const mine = records.filter((r) => r.payload?.includes("for kcat"));
    expect(mine).toHaveLength(1);
    const headers = mine[0]?.headers ?? [];
    expect(mine[0]?.key).toBe("ivy");
    expect(headers.slice(0, 4)).toEqual(["x-tier", "user", "meta:x-caller", "ivy"]);
  });
});

describe("raw http/2", () => {
  test("a.challenge.response.is.answered.204", async () => {
    const session = http2.connect(fx.url);
    const token = await rs.mint({ sub: "jack", scope: "echo:call" });
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/",
        "content-type": "application/x-challenge-response",
        authorization: `Bearer ${token}`,
      });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.end();
    });
    session.close();
    expect(status).toBe(204);
  });
});

/** A request stream the test feeds one message at a time. */
function requestQueue() {
  const waiting: ((text: string | undefined) => void)[] = [];
  const queued: (string | undefined)[] = [];
  const put = (text: string | undefined) => {
    const w = waiting.shift();
    if (w) w(text);
    else queued.push(text);
  };
  const take = () =>
    new Promise<string | undefined>((resolve) => {
      if (queued.length > 0) resolve(queued.shift());
      else waiting.push(resolve);
    });
  return {
    send: (message: string) => put(message),
    end: () => put(undefined),
    async *messages(): AsyncGenerator<{ message: string }> {
      for (;;) {
        const message = await take();
        if (message === undefined) return;
        yield { message };
      }
    },
  };
}
