import { describe, expect, test } from "vitest";
import type { GrpcKafkaRoute } from "../config/types.ts";
import { matchRoute } from "./route-match.ts";

const route = (topic: string, when: GrpcKafkaRoute["when"]): GrpcKafkaRoute => ({
  when,
  with: { capability: "produce", topic },
});
const metadata = (entries: Record<string, string>) => new Headers(entries);

describe("matchRoute", () => {
  const routes = [
    route("gold", [{ method: "grpc.examples.echo.Echo/UnaryEcho", metadata: { tier: "gold" } }]),
    route("unary", [{ method: "grpc.examples.echo.Echo/UnaryEcho" }]),
    route("echo", [{ method: "grpc.examples.echo.Echo/*" }]),
    route("any", []),
  ];
  const topicFor = (path: string, headers = metadata({})) =>
    matchRoute(routes, path, headers)?.with.topic;

  test("first matching route wins", () => {
    expect(topicFor("grpc.examples.echo.Echo/UnaryEcho", metadata({ tier: "gold" }))).toBe("gold");
    expect(topicFor("grpc.examples.echo.Echo/UnaryEcho")).toBe("unary");
    expect(topicFor("grpc.examples.echo.Echo/ServerStreamingEcho")).toBe("echo");
  });

  test("metadata must be present and equal", () => {
    expect(topicFor("grpc.examples.echo.Echo/UnaryEcho", metadata({ tier: "silver" }))).toBe(
      "unary",
    );
    // Header names are case-insensitive; values are not.
    expect(topicFor("grpc.examples.echo.Echo/UnaryEcho", metadata({ TIER: "gold" }))).toBe("gold");
    expect(topicFor("grpc.examples.echo.Echo/UnaryEcho", metadata({ tier: "Gold" }))).toBe("unary");
  });

  test("a route without when items matches everything", () => {
    expect(topicFor("other.Service/Call")).toBe("any");
  });

  test("no match is undefined", () => {
    expect(matchRoute(routes.slice(0, 3), "other.Service/Call", metadata({}))).toBeUndefined();
  });

  test("any when item may match", () => {
    const either = [route("either", [{ method: "a.A/X" }, { metadata: { "x-route": "b" } }])];
    expect(matchRoute(either, "a.A/X", metadata({}))?.with.topic).toBe("either");
    expect(matchRoute(either, "c.C/Y", metadata({ "x-route": "b" }))?.with.topic).toBe("either");
    expect(matchRoute(either, "c.C/Y", metadata({}))).toBeUndefined();
  });
});
