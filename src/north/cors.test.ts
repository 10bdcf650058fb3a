import { describe, expect, it } from "vitest";
import { corsDecision, exposeAll } from "./cors.ts";

const crossOrigin = { policy: "cross-origin" as const };

describe("CORS policy", () => {
  it("passes requests without Origin and same-origin requests untouched", () => {
    expect(corsDecision(crossOrigin, "POST", {}, "gw:7151")).toEqual({
      kind: "continue",
      headers: {},
    });
    expect(corsDecision(undefined, "POST", { origin: "http://gw:7151" }, "gw:7151")).toEqual({
      kind: "continue",
      headers: {},
    });
  });

  it("answers a preflight with 204 and what the browser asked for", () => {
    const d = corsDecision(
      { ...crossOrigin, maxAgeSeconds: 600 },
      "OPTIONS",
      {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web",
      },
      "gw:7151",
    );
    expect(d).toEqual({
      kind: "preflight",
      status: 204,
      headers: {
        "access-control-allow-origin": "https://app.example",
        vary: "Origin",
        "access-control-allow-methods": "POST, GET, OPTIONS",
        "access-control-allow-headers": "content-type,x-grpc-web",
        "access-control-max-age": "600",
      },
    });
  });

  it("refuses origins that are not listed, and everything cross-origin under same-origin", () => {
    const listed = { ...crossOrigin, allow: { origins: ["https://ok.example"] } };
    expect(corsDecision(listed, "POST", { origin: "https://evil.example" }, "gw").kind).toBe(
      "refuse",
    );
    expect(corsDecision(listed, "POST", { origin: "https://ok.example" }, "gw")).toMatchObject({
      kind: "continue",
      headers: { "access-control-allow-origin": "https://ok.example" },
    });
    expect(
      corsDecision({ policy: "same-origin" }, "POST", { origin: "https://x" }, "gw").kind,
    ).toBe("refuse");
  });

  it("adds credentials and exposed headers", () => {
    const d = corsDecision(
      {
        ...crossOrigin,
        allow: { credentials: true, origins: ["*"] },
        expose: { headers: ["grpc-status"] },
      },
      "POST",
      { origin: "https://a" },
      "gw",
    );
    expect(d).toEqual({
      kind: "continue",
      headers: {
        "access-control-allow-origin": "https://a",
        vary: "Origin",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "grpc-status",
      },
    });
  });

  it("exposes every response header when none are listed", () => {
    expect(
      exposeAll([
        ":status",
        "Grpc-Status",
        "grpc-message",
        "x-echo",
        "access-control-allow-origin",
      ]),
    ).toBe("grpc-status, grpc-message, x-echo");
  });
});
