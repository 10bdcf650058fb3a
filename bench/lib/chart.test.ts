import { describe, expect, it } from "vitest";
import { linearTicks, logTicks, renderChart } from "./chart.ts";
import type { BenchResults, PointFigures } from "./results.ts";

function figures(callsPerS: number, p50Ms: number, p99Ms: number): PointFigures {
  return {
    calls: callsPerS,
    failed: 0,
    callsPerS,
    p50Ms,
    p90Ms: p99Ms,
    p99Ms,
    maxMs: p99Ms,
    meanMs: p50Ms,
    errors: {},
    loadGenerator: "test",
  };
}

const results = {
  date: "2026-01-02T03:04:05.000Z",
  smoke: false,
  runtime: "bun 1.4.5",
  machine: { cores: 2, memoryBytes: 8 * 2 ** 30, cpuModel: "cpu", platform: "linux" },
  scenarios: [
    {
      id: "unary-100b",
      title: "unary <echo> & co",
      kind: "unary",
      payloadBytes: 100,
      points: [
        { concurrency: 1, gateway: figures(900, 1.2, 3), floor: figures(1000, 1, 2.5) },
        { concurrency: 16, floor: figures(5000, 3, 9), direct: figures(9000, 0.5, 2) },
      ],
    },
  ],
} as unknown as BenchResults;

describe("ticks", () => {
  it("steps linearly by 1, 2 or 5 times a power of ten up to the maximum", () => {
    expect(linearTicks(9)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(linearTicks(4300)).toEqual([0, 1000, 2000, 3000, 4000, 5000]);
  });

  it("labels 1-2-5 per decade on a log axis", () => {
    expect(logTicks(0.4, 30)).toEqual([0.5, 1, 2, 5, 10, 20]);
  });
});

describe("renderChart", () => {
  const svg = renderChart(results);

  it("is one SVG document with a throughput and a latency panel per scenario", () => {
    expect(svg.startsWith("<svg xmlns=")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg.match(/: calls\/s<\/text>/g)).toHaveLength(1);
    expect(svg.match(/: latency<\/text>/g)).toHaveLength(1);
  });

  it("escapes titles", () => {
    expect(svg).toContain("unary &lt;echo&gt; &amp; co");
  });

  it("draws one path per series with data and none for missing series", () => {
    // throughput: gateway, floor, direct; latency: p50 and p99 of each = 3 + 6 paths.
    expect(svg.match(/<path /g)).toHaveLength(9);
    expect(svg).not.toContain("NaN");
  });
});
