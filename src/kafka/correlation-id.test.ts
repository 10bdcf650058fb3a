import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { defaultCorrelationHeaders } from "../config/types.ts";
import {
  correlationDigest,
  correlationHashInput,
  createCorrelationId,
  routeCorrelationDigest,
} from "./correlation-id.ts";

const md5 = (s: string) => createHash("md5").update(s, "utf8").digest("hex");
const headers = defaultCorrelationHeaders;

describe("correlation id (docs/contract.md test vectors)", () => {
  const vectors: [string, string, string | undefined, string[], string, string][] = [
    [
      "example.EchoService",
      "EchoUnary",
      "responses",
      ["test"],
      "zilla:serviceexample.EchoServicezilla:methodEchoUnaryzilla:reply-toresponsestest",
      "479f2c3fb58bc3f04bbe15440a657670",
    ],
    [
      "example.EchoService",
      "EchoClientStream",
      "responses",
      ["test"],
      "zilla:serviceexample.EchoServicezilla:methodEchoClientStreamzilla:reply-toresponsestest",
      "97e816c79fb6624b7d221026cc36107c",
    ],
    [
      "example.EchoService",
      "EchoServerStream",
      "responses",
      ["test"],
      "zilla:serviceexample.EchoServicezilla:methodEchoServerStreamzilla:reply-toresponsestest",
      "08085616660359db13a42b81ed633c5d",
    ],
    [
      "example.EchoService",
      "EchoBidiStream",
      "responses",
      ["test"],
      "zilla:serviceexample.EchoServicezilla:methodEchoBidiStreamzilla:reply-toresponsestest",
      "14f43bae85c2ce394c9bd81ff6fa9d77",
    ],
    [
      "grpc.examples.echo.Echo",
      "BidirectionalStreamingEcho",
      "echo-responses",
      [],
      "zilla:servicegrpc.examples.echo.Echozilla:methodBidirectionalStreamingEchozilla:reply-toecho-responses",
      "46ae5cdb4b46cbb367cbad0bea36a56f",
    ],
    ["grpc.examples.echo.Echo", "UnaryEcho", undefined, [], "", "d41d8cd98f00b204e9800998ecf8427e"],
  ];

  for (const [service, method, replyTo, overrideValues, hashInput, digest] of vectors) {
    it(`${service}/${method} → ${digest}`, () => {
      const input = { service, method, replyTo, overrideValues, headers };
      expect(correlationHashInput(input)).toBe(hashInput);
      expect(md5(hashInput)).toBe(digest);
      expect(createCorrelationId({ ...input, idempotencyKey: "key-1" })).toBe(`key-1-${digest}`);
    });
  }

  it("is stable for the same idempotency key and route", () => {
    const input = { service: "a.B", method: "C", replyTo: "r", headers, idempotencyKey: "k" };
    expect(createCorrelationId(input)).toBe(createCorrelationId(input));
  });

  it("uses a random v4 UUID prefix without an idempotency key", () => {
    const input = { service: "a.B", method: "C", replyTo: "r", headers };
    const a = createCorrelationId(input);
    const b = createCorrelationId(input);
    expect(a).not.toBe(b);
    expect(a).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-[0-9a-f]{32}$/,
    );
  });

  it("hashes the configured header names, not the defaults", () => {
    const renamed = { ...headers, service: "x:svc" };
    const input = { service: "a.B", method: "C", replyTo: "r", headers: renamed };
    expect(correlationHashInput(input)).toBe("x:svca.Bzilla:methodCzilla:reply-tor");
  });
});

describe("correlation id on a guarded route (docs/guards.md)", () => {
  const route = {
    service: "grpc.examples.echo.Echo",
    method: "UnaryEcho",
    replyTo: "echo-responses",
    headers,
    idempotencyKey: "k1",
  };

  it("appends each guard's identity, length-prefixed, after Zilla's input", () => {
    const text = correlationHashInput({ ...route, guarded: [["jwt0", "alice"]] });
    expect(text).toBe(
      "zilla:servicegrpc.examples.echo.Echozilla:methodUnaryEchozilla:reply-toecho-responsesguarded:jwt0:5:alice",
    );
    expect(createCorrelationId({ ...route, guarded: [["jwt0", "alice"]] })).toBe(`k1-${md5(text)}`);
    // Lengths are in UTF-8 bytes.
    expect(correlationHashInput({ ...route, guarded: [["jwt0", "zoë"]] })).toMatch(
      /guarded:jwt0:4:zoë$/,
    );
  });

  it("differs per caller for one idempotency key, and not at all without guards", () => {
    const alice = createCorrelationId({ ...route, guarded: [["jwt0", "alice"]] });
    const bob = createCorrelationId({ ...route, guarded: [["jwt0", "bob"]] });
    expect(alice).not.toBe(bob);
    expect(createCorrelationId({ ...route, guarded: [] })).toBe(createCorrelationId(route));
  });
});

describe("digests kept per route", () => {
  const headers = defaultCorrelationHeaders;
  it("gives each route, service and method the digest of its own hashed text", () => {
    const routeA = {};
    const routeB = {};
    const inputs = [
      { service: "a.S", method: "M", replyTo: "r1", headers },
      { service: "a.S", method: "N", replyTo: "r1", headers },
      { service: "b.S", method: "M", replyTo: "r1", headers },
    ];
    for (const input of inputs) {
      const expected = createHash("md5").update(correlationHashInput(input)).digest("hex");
      expect(routeCorrelationDigest(routeA, input)).toBe(expected);
      expect(routeCorrelationDigest(routeA, input)).toBe(expected);
      expect(correlationDigest(input)).toBe(expected);
    }
    // Another route with another reply topic and overrides: its own digests.
    const other = { service: "a.S", method: "M", replyTo: "r2", overrideValues: ["x"], headers };
    expect(routeCorrelationDigest(routeB, other)).toBe(correlationDigest(other));
    expect(routeCorrelationDigest(routeB, other)).not.toBe(
      routeCorrelationDigest(routeA, inputs[0] as (typeof inputs)[number]),
    );
  });

  it("hashes the caller on guarded routes each time, never from the route's cache", () => {
    const route = {};
    const base = { service: "a.S", method: "M", replyTo: "r", headers };
    const plain = routeCorrelationDigest(route, base);
    const alice = routeCorrelationDigest(route, { ...base, guarded: [["jwt", "alice"]] as const });
    const bob = routeCorrelationDigest(route, { ...base, guarded: [["jwt", "bob"]] as const });
    expect(new Set([plain, alice, bob]).size).toBe(3);
    expect(routeCorrelationDigest(route, base)).toBe(plain);
  });
});
