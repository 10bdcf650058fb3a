/**
 * The broker's SASL state machine over a real socket, request by request: what is answered,
 * what is refused, and when the connection is closed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScramClient } from "../../kafka/client/sasl.ts";
import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { Reader } from "../../kafka/protocol/wire.ts";
import { type Broker, startBroker } from "../broker.ts";
import { WireClient } from "../wire-client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const USERS = { alice: "wonderland", bob: "builder" };

let broker: Broker;
let plainBroker: Broker;
const clients: WireClient[] = [];
const logLines: string[] = [];

beforeAll(async () => {
  broker = await startBroker({
    sasl: { mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], users: USERS },
    log: (line) => logLines.push(line),
  });
  plainBroker = await startBroker();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await broker?.close();
  await plainBroker?.close();
});

async function connect(to: Broker = broker): Promise<WireClient> {
  const client = await WireClient.connect(to.host, to.port);
  clients.push(client);
  return client;
}

function apiRanges(r: Reader): Map<number, [number, number]> {
  expect(r.int16()).toBe(ErrorCode.NONE);
  const ranges = new Map<number, [number, number]>();
  for (const [key, min, max] of r.array((r) => [r.int16(), r.int16(), r.int16()])) {
    ranges.set(key as number, [min as number, max as number]);
  }
  return ranges;
}

interface HandshakeAnswer {
  errorCode: number;
  mechanisms: string[];
}

async function handshake(c: WireClient, mechanism: string, version = 1): Promise<HandshakeAnswer> {
  const r = await c.request(ApiKey.SaslHandshake, version, (w) => w.string(mechanism));
  return { errorCode: r.int16(), mechanisms: r.array((r) => r.string()) };
}

interface AuthenticateAnswer {
  errorCode: number;
  message: string | null;
  authBytes: Uint8Array;
  sessionLifetimeMs?: bigint;
}

async function authenticate(
  c: WireClient,
  bytes: Uint8Array,
  version = 1,
): Promise<AuthenticateAnswer> {
  const flexible = version >= 2;
  const r = await c.request(
    ApiKey.SaslAuthenticate,
    version,
    (w) => {
      if (flexible) w.compactBytes(bytes).taggedFields();
      else w.bytes(bytes);
    },
    { flexibleRequest: flexible, flexibleResponse: flexible },
  );
  const errorCode = r.int16();
  const message = flexible ? r.compactNullableString() : r.nullableString();
  const authBytes = flexible ? r.compactBytes() : r.bytes();
  const answer: AuthenticateAnswer = { errorCode, message, authBytes };
  if (version >= 1) answer.sessionLifetimeMs = r.int64();
  if (flexible) r.taggedFields();
  expect(r.remaining).toBe(0);
  return answer;
}

const plainToken = (user: string, password: string, authzid = "") =>
  encoder.encode(`${authzid}\u0000${user}\u0000${password}`);

/** Metadata v1 for no topics: answers with this broker's node when the API is open. */
async function metadataBrokers(c: WireClient): Promise<number> {
  const r = await c.request(ApiKey.Metadata, 1, (w) => w.int32(0));
  return r.int32();
}

describe("ApiVersions", () => {
  it("advertises SaslHandshake v0-1 and SaslAuthenticate v0-2 only when SASL is required", async () => {
    const sasl = apiRanges(await (await connect()).request(ApiKey.ApiVersions, 0, () => {}));
    expect(sasl.get(ApiKey.SaslHandshake)).toEqual([0, 1]);
    expect(sasl.get(ApiKey.SaslAuthenticate)).toEqual([0, 2]);
    const open = apiRanges(
      await (await connect(plainBroker)).request(ApiKey.ApiVersions, 0, () => {}),
    );
    expect(open.has(ApiKey.SaslHandshake)).toBe(false);
    expect(open.has(ApiKey.SaslAuthenticate)).toBe(false);
    expect(open.get(ApiKey.Metadata)).toEqual(sasl.get(ApiKey.Metadata));
  });
});

describe("before authentication", () => {
  it("closes the connection, unanswered, on any other API", async () => {
    const c = await connect();
    await expect(metadataBrokers(c)).rejects.toThrow(/connection closed/);
    await c.closed;
    expect(logLines.some((l) => l.includes("request for API 3 before SASL authentication"))).toBe(
      true,
    );
  });

  it("answers SaslAuthenticate without a handshake with ILLEGAL_SASL_STATE, then closes", async () => {
    const c = await connect();
    const answer = await authenticate(c, plainToken("alice", USERS.alice));
    expect(answer.errorCode).toBe(ErrorCode.ILLEGAL_SASL_STATE);
    expect(answer.message).toMatch(/before SaslHandshake/);
    await c.closed;
  });

  it("answers an unknown mechanism with UNSUPPORTED_SASL_MECHANISM and the offer, then closes", async () => {
    const c = await connect();
    expect(await handshake(c, "GSSAPI")).toEqual({
      errorCode: ErrorCode.UNSUPPORTED_SASL_MECHANISM,
      mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    });
    await c.closed;
  });

  it("refuses a v0 handshake (raw tokens) with UNSUPPORTED_VERSION, then closes", async () => {
    const c = await connect();
    expect((await handshake(c, "PLAIN", 0)).errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
    await c.closed;
  });
});

describe("PLAIN", () => {
  it("authenticates with SaslAuthenticate v2 (flexible) and then serves every API", async () => {
    const c = await connect();
    expect(await handshake(c, "PLAIN")).toEqual({
      errorCode: ErrorCode.NONE,
      mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    });
    const answer = await authenticate(c, plainToken("alice", USERS.alice), 2);
    expect(answer).toEqual({
      errorCode: ErrorCode.NONE,
      message: null,
      authBytes: new Uint8Array(0),
      sessionLifetimeMs: 0n,
    });
    expect(await metadataBrokers(c)).toBe(1);
    // Like Kafka: a second exchange is an error, but the connection stays.
    const again = await authenticate(c, plainToken("alice", USERS.alice), 0);
    expect(again.errorCode).toBe(ErrorCode.ILLEGAL_SASL_STATE);
    expect((await handshake(c, "PLAIN")).errorCode).toBe(ErrorCode.ILLEGAL_SASL_STATE);
    expect(await metadataBrokers(c)).toBe(1);
    expect(c.isClosed).toBe(false);
  });

  it("answers a wrong password with SASL_AUTHENTICATION_FAILED and a message, then closes", async () => {
    const c = await connect();
    await handshake(c, "PLAIN");
    const answer = await authenticate(c, plainToken("alice", "guess"), 0);
    expect(answer.errorCode).toBe(ErrorCode.SASL_AUTHENTICATION_FAILED);
    expect(answer.message).toMatch(/Authentication failed.*invalid credentials.*PLAIN/);
    await c.closed;
  });

  it("refuses an authorization id for another user", async () => {
    const c = await connect();
    await handshake(c, "PLAIN");
    const answer = await authenticate(c, plainToken("bob", USERS.bob, "alice"));
    expect(answer.errorCode).toBe(ErrorCode.SASL_AUTHENTICATION_FAILED);
    expect(answer.message).toMatch(/authorization id/);
    await c.closed;
  });
});

describe("SCRAM", () => {
  for (const [mechanism, version] of [
    ["SCRAM-SHA-256", 1],
    ["SCRAM-SHA-512", 2],
  ] as const) {
    it(`authenticates ${mechanism} over SaslAuthenticate v${version}, proving the server's side`, async () => {
      const c = await connect();
      expect((await handshake(c, mechanism)).errorCode).toBe(ErrorCode.NONE);
      const scram = new ScramClient(
        mechanism === "SCRAM-SHA-256" ? "scram-sha-256" : "scram-sha-512",
        "bob",
        USERS.bob,
      );
      const first = await authenticate(c, scram.clientFirst(), version);
      expect(first.errorCode).toBe(ErrorCode.NONE);
      expect(decoder.decode(first.authBytes)).toMatch(/^r=[^,]+,s=[^,]+,i=4096$/);
      const final = await authenticate(c, scram.clientFinal(first.authBytes), version);
      expect(final.errorCode).toBe(ErrorCode.NONE);
      expect(() => scram.verifyServerFinal(final.authBytes)).not.toThrow();
      expect(await metadataBrokers(c)).toBe(1);
    });
  }

  it("fails a wrong password at the proof with SASL_AUTHENTICATION_FAILED, then closes", async () => {
    const c = await connect();
    await handshake(c, "SCRAM-SHA-256");
    const scram = new ScramClient("scram-sha-256", "alice", "guess");
    const first = await authenticate(c, scram.clientFirst());
    expect(first.errorCode).toBe(ErrorCode.NONE);
    const final = await authenticate(c, scram.clientFinal(first.authBytes));
    expect(final.errorCode).toBe(ErrorCode.SASL_AUTHENTICATION_FAILED);
    expect(final.message).toMatch(/invalid credentials with SASL mechanism SCRAM-SHA-256/);
    await c.closed;
  });

  it("delivers the failure before closing even while responses are delayed", async () => {
    broker.faults.setLatency(50);
    try {
      const c = await connect();
      await handshake(c, "SCRAM-SHA-512");
      const answer = await authenticate(c, encoder.encode("not a scram message"));
      expect(answer.errorCode).toBe(ErrorCode.SASL_AUTHENTICATION_FAILED);
      expect(answer.message).toMatch(/malformed client-first-message/);
      await c.closed;
    } finally {
      broker.faults.setLatency(0);
    }
  });
});
