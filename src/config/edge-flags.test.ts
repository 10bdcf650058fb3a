import { describe, expect, it } from "vitest";
import { applyEdgeSettings, parseEdgeFlags } from "./edge-flags.ts";
import { defaultEdgeLimits, defaultGrpcKafkaOptions, type GatewayConfig } from "./types.ts";

function config(): GatewayConfig {
  return {
    name: "t",
    kafka: { servers: ["127.0.0.1:9092"] },
    north: [
      {
        binding: "north",
        listeners: [
          { host: "0.0.0.0", port: 7151 },
          { host: "0.0.0.0", port: 7153, tls: { cert: "c", key: "k", alpn: ["h2"] } },
        ],
        services: [],
        routes: [],
        options: defaultGrpcKafkaOptions(),
      },
    ],
    west: [],
  };
}

describe("parseEdgeFlags", () => {
  it("reads numbers, the TLS policy and the ops placement", () => {
    const settings = parseEdgeFlags({
      "max-concurrent-streams": "8",
      "idle-timeout-ms": "0",
      "max-message-bytes": "1000",
      "tls-min-version": "TLSv1.3",
      "tls-ciphers": "ECDHE-RSA-AES128-GCM-SHA256",
      "ops-host": "127.0.0.1",
      "ops-on-public-ports": true,
    });
    expect(settings).toEqual({
      limits: { maxConcurrentStreams: 8, idleTimeoutMs: 0 },
      maxMessageBytes: 1000,
      tlsMinVersion: "TLSv1.3",
      tlsCiphers: "ECDHE-RSA-AES128-GCM-SHA256",
      opsHost: "127.0.0.1",
      opsOnPublicPorts: true,
    });
  });

  it("says what is wrong with a value", () => {
    expect(parseEdgeFlags({ "max-concurrent-streams": "0" })).toBe(
      '--max-concurrent-streams: expected a whole number of at least 1, got "0"',
    );
    expect(parseEdgeFlags({ "handshake-timeout-ms": "1.5" })).toBe(
      '--handshake-timeout-ms: expected a whole number of at least 1, got "1.5"',
    );
    expect(parseEdgeFlags({ "tls-min-version": "TLSv1.1" })).toBe(
      '--tls-min-version: expected TLSv1.2 or TLSv1.3, got "TLSv1.1"',
    );
  });
});

describe("applyEdgeSettings", () => {
  it("fills every limit, sets the message limit and the TLS policy of TLS listeners", () => {
    const c = config();
    const settings = parseEdgeFlags({ "max-resets": "50", "tls-min-version": "TLSv1.3" });
    if (typeof settings === "string") throw new Error(settings);
    expect(applyEdgeSettings(c, settings)).toBeUndefined();
    expect(c.north[0]?.limits).toEqual({ ...defaultEdgeLimits(), maxResets: 50 });
    expect(c.north[0]?.listeners[0]?.tls).toBeUndefined();
    expect(c.north[0]?.listeners[1]?.tls?.minVersion).toBe("TLSv1.3");
  });

  it("refuses a write buffer smaller than a message", () => {
    const settings = parseEdgeFlags({
      "max-message-bytes": "2000000",
      "max-write-buffer-bytes": "1000000",
    });
    if (typeof settings === "string") throw new Error(settings);
    expect(applyEdgeSettings(config(), settings)).toMatch(/must be at least the message limit/);
  });
});
