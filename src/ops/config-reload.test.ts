import { describe, expect, it } from "vitest";
import { exampleConfig } from "../../test/support/stack.ts";
import type { GatewayConfig } from "../config/types.ts";
import { planReload } from "./config-reload.ts";

const base = (): GatewayConfig => exampleConfig("127.0.0.1:9092", 50051);

describe("planReload", () => {
  it("applies route, service, method and CORS changes in place", () => {
    const next = base();
    const north = next.north[0] as GatewayConfig["north"][number];
    north.routes = [...north.routes, { when: [], with: { capability: "fetch", topic: "t" } }];
    north.methods = ["grpc.examples.echo.Echo/UnaryEcho"];
    north.accessControl = { policy: "cross-origin" };
    const west = next.west[0] as GatewayConfig["west"][number];
    west.routes = [{ ...(west.routes[0] as (typeof west.routes)[number]), when: [] }];
    const plan = planReload(base(), next);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.north).toEqual([north]);
    expect(plan.west).toEqual([west]);
  });

  it("applies guard changes (keys, claims, guarded roles) in place", () => {
    const next = base();
    const north = next.north[0] as GatewayConfig["north"][number];
    north.guards = {
      jwt0: {
        type: "jwt",
        name: "jwt0",
        issuer: "https://auth.example.com",
        audience: "https://api.example.com",
        roles: "scope",
        identity: "sub",
        attributes: {},
        keysUrl: "https://auth.example.com/.well-known/jwks.json",
      },
    };
    north.routes = north.routes.map((r) => ({ ...r, guarded: [{ guard: "jwt0", roles: ["a"] }] }));
    north.methodGuards = [{ guarded: [{ guard: "jwt0", roles: [] }] }];
    const plan = planReload(base(), next);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.north).toEqual([north]);
  });

  it("plans nothing for an unchanged config", () => {
    expect(planReload(base(), base())).toEqual({ north: [], west: [], needsRestart: [] });
  });

  it("reports what needs a restart and keeps the running listeners and options", () => {
    const next = base();
    next.kafka = { servers: ["other:9092"] };
    const north = next.north[0] as GatewayConfig["north"][number];
    north.listeners = [{ host: "127.0.0.1", port: 7151 }];
    north.options = { ...north.options, defaultTimeoutMs: 1 };
    north.services = [];
    (next.west[0] as GatewayConfig["west"][number]).options.maxConcurrentCalls = 1;
    next.north.push({ ...north, binding: "second" });
    next.west = [
      ...next.west,
      { ...(next.west[0] as GatewayConfig["west"][number]), binding: "w2" },
    ];
    const plan = planReload(base(), next);
    expect(plan.needsRestart).toEqual([
      "kafka servers or client options changed: restart the gateway to apply",
      "north north_grpc_kafka_mapping listeners changed: restart the gateway to apply",
      "north north_grpc_kafka_mapping options changed: restart the gateway to apply",
      "north second added: restart the gateway to apply",
      "west west_kafka_grpc_remote_server options changed: restart the gateway to apply",
      "west w2 added: restart the gateway to apply",
    ]);
    // Only the served services changed in place; listeners and options stay as they run.
    expect(plan.north).toEqual([{ ...base().north[0], services: [] }]);
    expect(plan.west).toEqual([]);
  });
});
