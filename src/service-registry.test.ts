import { describe, expect, it } from "vitest";
import {
  loadServiceRegistry,
  methodMatches,
  methodPartsMatch,
  splitMethodPath,
} from "./service-registry.ts";

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

  it("matches in place exactly as comparing the split parts", () => {
    const bySplit = (pattern: string, path: string) => {
      const [ps, pm] = splitMethodPath(pattern);
      const [s, m] = splitMethodPath(path);
      return ps === s && (pm === "*" || pm === m);
    };
    const paths = ["", "/", "a", "a.B", "/a.B", "a.B/", "a.B/*", "/a.B/*", "a.B/M", "/a.B/M"];
    paths.push("a.B/MM", "a.C/M", "x/y/z", "/x/y/*", "x/y", "*", "/*", "a.B/*x", "//");
    let matched = 0;
    for (const pattern of paths) {
      for (const path of paths) {
        expect(methodMatches(pattern, path), `${pattern} ~ ${path}`).toBe(bySplit(pattern, path));
        if (bySplit(pattern, path)) matched++;
      }
    }
    expect(matched).toBeGreaterThan(paths.length);
  });

  it("matches a service and method given apart exactly as their joined path", () => {
    const patterns = ["a.B/*", "a.B/C", "/a.B/C", "/a.B/*", "a.B", "a.B/", "*", "a.BB/C", "a/B/C"];
    const parts: [string, string][] = [
      ["a.B", "C"],
      ["a.B", "D"],
      ["a.BB", "C"],
      ["a.B", ""],
      ["a", "B/C"],
      ["", "C"],
      ["a.B", "*"],
    ];
    let matches = 0;
    for (const pattern of patterns) {
      for (const [service, method] of parts) {
        // A method name with a "/" is no gRPC method: joined, it reads as another service.
        const joined = !method.includes("/") && methodMatches(pattern, `${service}/${method}`);
        expect(methodPartsMatch(pattern, service, method), `${pattern} ${service} ${method}`).toBe(
          joined,
        );
        if (joined) matches++;
      }
    }
    expect(matches).toBeGreaterThan(5);
  });
});
