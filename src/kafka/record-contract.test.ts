import { describe, expect, it } from "vitest";
import { defaultCorrelationHeaders as names } from "../config/types.ts";
import {
  isRequestMetadata,
  parseReplyHeaders,
  parseRequestHeaders,
  replyEndHeaders,
  replyHeaders,
  requestHeaders,
  requestKey,
} from "./record-contract.ts";

const produce = {
  capability: "produce" as const,
  topic: "echo-requests",
  replyTo: "echo-responses",
  overrides: { "x-tenant": "acme", "x-b": "2" },
};

describe("request records (docs/contract.md: Request records)", () => {
  it("writes overrides, correlation headers, deadline, then metadata, in order", () => {
    const headers = requestHeaders({
      route: produce,
      names,
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      correlationId: "c-1",
      deadlineMs: 1700000000123.7,
      metadata: [
        [":path", "/x"],
        ["te", "trailers"],
        ["content-type", "application/grpc"],
        ["grpc-timeout", "1S"],
        ["grpc-accept-encoding", "gzip"],
        ["user-agent", "x"],
        ["service-name", "y"],
        ["X-Custom", "v"],
        ["trace-bin", "AAEC"],
        ["idempotency-key", "k"],
      ],
    });
    expect(headers).toEqual([
      ["x-tenant", "acme"],
      ["x-b", "2"],
      ["zilla:service", "grpc.examples.echo.Echo"],
      ["zilla:method", "UnaryEcho"],
      ["zilla:reply-to", "echo-responses"],
      ["zilla:correlation-id", "c-1"],
      ["zilla:deadline", "1700000000123"],
      ["meta:x-custom", "v"],
      ["meta:trace-bin", "AAEC"],
      ["meta:idempotency-key", "k"],
    ]);
  });

  it("tags a keyed call's attempt after the deadline, and reads it back", () => {
    const headers = requestHeaders({
      route: produce,
      names,
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      correlationId: "k-1",
      deadlineMs: 5,
      attemptId: "a-1",
      metadata: [["idempotency-key", "k"]],
    });
    expect(headers.slice(6, 8)).toEqual([
      ["zilla:deadline", "5"],
      ["zilla:attempt", "a-1"],
    ]);
    expect(parseRequestHeaders(headers, names).attemptId).toBe("a-1");
    expect(parseRequestHeaders([["zilla:correlation-id", "c"]], names).attemptId).toBeUndefined();
  });

  it("calls of one method share its service, method and reply-to headers; the rest is each call's", () => {
    const call = (correlationId: string, tenant: string, method = "UnaryEcho") =>
      requestHeaders({
        route: { ...produce, overrides: { "x-tenant": tenant } },
        names,
        service: "grpc.examples.echo.Echo",
        method,
        correlationId,
        metadata: [["X-Custom", correlationId]],
      });
    const a = call("c-1", "acme");
    const b = call("c-2", "other");
    // the same header objects: a pending call need not hold its own
    for (const i of [1, 2, 3]) expect(b[i]).toBe(a[i]);
    expect(a).not.toBe(b);
    expect(b).toEqual([
      ["x-tenant", "other"],
      ["zilla:service", "grpc.examples.echo.Echo"],
      ["zilla:method", "UnaryEcho"],
      ["zilla:reply-to", "echo-responses"],
      ["zilla:correlation-id", "c-2"],
      ["meta:x-custom", "c-2"],
    ]);
    expect(a[0]).toEqual(["x-tenant", "acme"]);
    expect(a.slice(4)).toEqual([
      ["zilla:correlation-id", "c-1"],
      ["meta:x-custom", "c-1"],
    ]);
    // another method, another reply topic, other header names: their own
    expect(call("c-3", "acme", "ServerStreamingEcho")[2]).toEqual([
      "zilla:method",
      "ServerStreamingEcho",
    ]);
    const renamed = { ...names, service: "x:service" };
    const other = requestHeaders({
      route: { ...produce, replyTo: "elsewhere" },
      names: renamed,
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      correlationId: "c-4",
      metadata: [],
    });
    expect(other.slice(2, 5)).toEqual([
      ["x:service", "grpc.examples.echo.Echo"],
      ["zilla:method", "UnaryEcho"],
      ["zilla:reply-to", "elsewhere"],
    ]);
  });

  it("reads a route's overrides once: calls of one route share its override headers", () => {
    const route = { ...produce, overrides: { "x-tenant": "acme", "meta:x-user": "u1" } };
    const call = (correlationId: string) =>
      requestHeaders({
        route,
        names,
        service: "grpc.examples.echo.Echo",
        method: "UnaryEcho",
        correlationId,
        metadata: [
          ["x-user", "forged"],
          ["x-other", correlationId],
        ],
      });
    const a = call("c-1");
    const b = call("c-2");
    expect(b[0]).toBe(a[0]);
    expect(b[1]).toBe(a[1]);
    // the client's x-user is dropped on every call: the route writes meta:x-user
    for (const headers of [a, b]) {
      expect(headers.filter(([name]) => name === "meta:x-user")).toEqual([["meta:x-user", "u1"]]);
    }
    expect(b.at(-1)).toEqual(["meta:x-other", "c-2"]);
  });

  it("oneway routes carry only overrides and metadata", () => {
    const headers = requestHeaders({
      route: { capability: "produce", topic: "t", overrides: { a: "1" } },
      names,
      service: "s.S",
      method: "M",
      correlationId: "c",
      deadlineMs: 5,
      metadata: [["k", "v"]],
    });
    expect(headers).toEqual([
      ["a", "1"],
      ["meta:k", "v"],
    ]);
  });

  it("never copies grpc-* headers (docs/contract.md: difference 1)", () => {
    expect(isRequestMetadata("grpc-timeout")).toBe(false);
    expect(isRequestMetadata("grpc-trace-bin")).toBe(false);
    expect(isRequestMetadata("custom-bin")).toBe(true);
  });

  it("keys by route key, else correlation id", () => {
    expect(requestKey(produce, "c")).toBe("c");
    expect(requestKey({ ...produce, key: "fixed" }, "c")).toBe("fixed");
  });

  it("parses what it writes", () => {
    const parsed = parseRequestHeaders(
      [
        ["zilla:service", "s.S"],
        ["zilla:method", "M"],
        ["zilla:reply-to", "r"],
        ["zilla:correlation-id", "c"],
        ["zilla:deadline", "123"],
        ["meta:a", "1"],
        ["meta:b-bin", "AA=="],
      ],
      names,
    );
    expect(parsed).toMatchObject({
      service: "s.S",
      method: "M",
      replyTo: "r",
      correlationId: "c",
      deadlineMs: 123,
      metadata: [
        ["a", "1"],
        ["b-bin", "AA=="],
      ],
    });
  });
});

describe("reply records (docs/contract.md: Reply records)", () => {
  it("puts the correlation id first, then response metadata", () => {
    expect(
      replyHeaders(names, "c", [
        ["x", "1"],
        ["grpc-status", "0"],
        ["content-type", "a"],
      ]),
    ).toEqual([
      ["zilla:correlation-id", "c"],
      ["meta:x", "1"],
    ]);
  });

  it("ends with status and message", () => {
    expect(replyEndHeaders(names, "c", 5, "not found")).toEqual([
      ["zilla:correlation-id", "c"],
      ["zilla:status", "5"],
      ["zilla:message", "not found"],
    ]);
    expect(replyEndHeaders(names, "c", 0)).toEqual([
      ["zilla:correlation-id", "c"],
      ["zilla:status", "0"],
    ]);
  });

  it("an answer to one attempt names it, and north reads the name", () => {
    const headers = replyEndHeaders(names, "c", 4, "late", [], "a-1");
    expect(headers).toEqual([
      ["zilla:correlation-id", "c"],
      ["zilla:status", "4"],
      ["zilla:message", "late"],
      ["zilla:attempt", "a-1"],
    ]);
    expect(parseReplyHeaders(headers, names).attemptId).toBe("a-1");
  });

  it("parses status, message and metadata", () => {
    expect(
      parseReplyHeaders(
        [
          ["zilla:correlation-id", "c"],
          ["zilla:status", "9"],
          ["zilla:message", "m"],
          ["meta:k", "v"],
        ],
        names,
      ),
    ).toEqual({ correlationId: "c", status: 9, message: "m", metadata: [["k", "v"]] });
    expect(parseReplyHeaders([["zilla:status", "banana"]], names).status).toBe(2);
  });
});
