import { describe, expect, it } from "vitest";
import { createMetricsRegistry } from "./metrics.ts";

describe("metrics registry", () => {
  it("renders counters and gauges with labels in the text format", async () => {
    const registry = createMetricsRegistry();
    const calls = registry.counter({
      name: "calls_total",
      help: "Calls.\nAll of them.",
      labelNames: ["method", "status"],
    });
    const ok = calls.labels("Unary", "OK");
    ok.inc();
    ok.inc(2);
    calls.labels('we"ird\\name\n', "INTERNAL").inc();
    registry.gauge({ name: "active", help: "Active." }).labels().set(4);
    expect(await registry.expose()).toBe(
      [
        "# HELP calls_total Calls.\\nAll of them.",
        "# TYPE calls_total counter",
        'calls_total{method="Unary",status="OK"} 3',
        'calls_total{method="we\\"ird\\\\name\\n",status="INTERNAL"} 1',
        "# HELP active Active.",
        "# TYPE active gauge",
        "active 4",
        "",
      ].join("\n"),
    );
  });

  it("renders histograms with cumulative buckets, +Inf, sum and count", async () => {
    const registry = createMetricsRegistry();
    const h = registry.histogram({
      name: "size_bytes",
      help: "Sizes.",
      labelNames: ["m"],
      buckets: [10, 1, 100],
    });
    const child = h.labels("x");
    for (const v of [0.5, 1, 5, 50, 500]) child.observe(v);
    expect(await registry.expose()).toBe(
      [
        "# HELP size_bytes Sizes.",
        "# TYPE size_bytes histogram",
        'size_bytes_bucket{m="x",le="1"} 2',
        'size_bytes_bucket{m="x",le="10"} 3',
        'size_bytes_bucket{m="x",le="100"} 4',
        'size_bytes_bucket{m="x",le="+Inf"} 5',
        'size_bytes_sum{m="x"} 556.5',
        'size_bytes_count{m="x"} 5',
        "",
      ].join("\n"),
    );
  });

  it("resolves a label set once and returns the same child", () => {
    const family = createMetricsRegistry().counter({ name: "c", help: "c", labelNames: ["a"] });
    expect(family.labels("1")).toBe(family.labels("1"));
    expect(() => family.labels("1", "2")).toThrow(/takes 1 label values/);
  });

  it("runs collectors before rendering and survives a hanging or failing one", async () => {
    const registry = createMetricsRegistry({ collectorTimeoutMs: 100 });
    const gauge = registry.gauge({ name: "waiting", help: "w" }).labels();
    let n = 0;
    registry.addCollector(() => {
      gauge.set(++n);
    });
    registry.addCollector(() => Promise.reject(new Error("down")));
    const remove = registry.addCollector(() => new Promise(() => {}));
    const started = Date.now();
    expect(await registry.expose()).toContain("waiting 1\n");
    // The hanging collector is given up on (100 ms), not waited for forever.
    expect(Date.now() - started).toBeLessThan(10_000);
    remove();
    expect(await registry.expose()).toContain("waiting 2\n");
  });

  it("leaves out families with no label set yet and rejects bad names", async () => {
    const registry = createMetricsRegistry();
    registry.counter({ name: "unused_total", help: "u", labelNames: ["a"] });
    expect(await registry.expose()).toBe("");
    expect(() => registry.counter({ name: "bad-name", help: "b" })).toThrow(/invalid metric/);
  });
});
