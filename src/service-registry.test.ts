import { describe, expect, it } from "vitest";
import { loadServiceRegistry, methodMatches } from "./service-registry.ts";

describe("service registry from gen/", () => {
  it("finds the echo service and its four methods", async () => {
    const registry = await loadServiceRegistry();
    const echo = registry.services.get("grpc.examples.echo.Echo");
    expect(echo?.methods.map((m) => `${m.name}:${m.methodKind}`)).toEqual([
      "UnaryEcho:unary",
      "ServerStreamingEcho:server_streaming",
      "ClientStreamingEcho:client_streaming",
      "BidirectionalStreamingEcho:bidi_streaming",
    ]);
    expect(registry.method("grpc.examples.echo.Echo/UnaryEcho")?.name).toBe("UnaryEcho");
    expect(registry.method("grpc.examples.echo.Echo/Nope")).toBeUndefined();
    expect(registry.matching("grpc.examples.echo.Echo/*")).toHaveLength(4);
  });

  it("matches method patterns", () => {
    expect(methodMatches("a.B/*", "a.B/C")).toBe(true);
    expect(methodMatches("a.B/C", "/a.B/C")).toBe(true);
    expect(methodMatches("a.B/C", "a.B/D")).toBe(false);
    expect(methodMatches("a.B/*", "a.BB/C")).toBe(false);
  });
});
