import { describe, expect, it } from "vitest";
import { createGatewayMetrics } from "../ops/gateway-metrics.ts";
import { createLogger } from "../ops/logger.ts";
import { createMetricsRegistry } from "../ops/metrics.ts";
import { createUpstreamHealth } from "./upstream-health.ts";

/** A health tracker on a clock the test moves, with its log lines and metrics. */
function setup() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("debug", (line) => lines.push(JSON.parse(line)));
  const registry = createMetricsRegistry();
  const metrics = createGatewayMetrics(registry, "ns").west("west_binding");
  const clock = { ms: 1_000_000 };
  const healthFor = createUpstreamHealth({
    logger,
    metrics,
    warnIntervalMs: 10_000,
    now: () => clock.ms,
  });
  const sample = async (name: string, upstream: string) => {
    const text = await registry.expose();
    const line = text
      .split("\n")
      .find((l) => l.startsWith(`${name}{`) && l.includes(`upstream="${upstream}"`));
    return line === undefined ? undefined : Number(line.split(" ").at(-1));
  };
  const brief = () => lines.map((l) => [l.level, l.msg, l.upstream, l.failures]);
  return { lines, clock, healthFor, sample, brief };
}

describe("upstream health", () => {
  it("warns at the first failure, then at most once per interval with the count", async () => {
    const { clock, healthFor, sample, brief } = setup();
    const echo = healthFor("echo:50051");
    echo.unreachable("connect ECONNREFUSED");
    expect(brief()).toEqual([["warn", "cannot reach upstream", "echo:50051", 1]]);
    expect(await sample("gateway_upstream_up", "echo:50051")).toBe(0);

    // Within the interval: counted, not logged.
    for (let i = 0; i < 4; i++) {
      clock.ms += 2_000;
      echo.unreachable("connect ECONNREFUSED");
    }
    expect(brief()).toHaveLength(1);
    clock.ms += 2_000;
    echo.unreachable("connect ETIMEDOUT");
    expect(brief().at(-1)).toEqual(["warn", "still cannot reach upstream", "echo:50051", 5]);
    expect(await sample("gateway_upstream_connect_failures_total", "echo:50051")).toBe(6);

    clock.ms += 500;
    echo.reached();
    expect(brief().at(-1)).toEqual(["info", "upstream reachable again", "echo:50051", 6]);
    expect(await sample("gateway_upstream_up", "echo:50051")).toBe(1);

    // Down again later: warned at once again.
    clock.ms += 1_000;
    echo.unreachable("connect ECONNREFUSED");
    expect(brief().at(-1)).toEqual(["warn", "cannot reach upstream", "echo:50051", 1]);
  });

  it("keeps each upstream apart", async () => {
    const { healthFor, sample, brief } = setup();
    const a = healthFor("a:1");
    const b = healthFor("b:2");
    a.unreachable("refused");
    b.reached();
    b.unreachable("refused");
    expect(brief()).toEqual([
      ["warn", "cannot reach upstream", "a:1", 1],
      ["warn", "cannot reach upstream", "b:2", 1],
    ]);
    a.reached();
    expect(await sample("gateway_upstream_up", "a:1")).toBe(1);
    expect(await sample("gateway_upstream_up", "b:2")).toBe(0);
    expect(await sample("gateway_upstream_connect_failures_total", "a:1")).toBe(1);
  });
});
