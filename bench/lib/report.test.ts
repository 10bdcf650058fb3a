import { describe, expect, it } from "vitest";
import { bytes, markdownTable, renderMarkdown, renderText, textTable } from "./report.ts";
import type { BenchResults } from "./results.ts";

describe("tables", () => {
  it("aligns text columns: first left, the rest right", () => {
    const text = textTable(
      ["name", "n"],
      [
        ["a", "1"],
        ["bb", "100"],
      ],
    );
    expect(text.split("\n")).toEqual(["name    n", "----  ---", "a       1", "bb    100"]);
  });

  it("writes a Markdown table with right-aligned numbers", () => {
    expect(markdownTable(["a", "b"], [["x", "1"]])).toBe("| a | b |\n| :--- | ---: |\n| x | 1 |");
  });
});

describe("bytes", () => {
  it("picks a unit", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(4096)).toBe("4.00 KiB");
    expect(bytes(3 * 2 ** 20)).toBe("3.0 MiB");
    expect(bytes(null)).toBe("n/a");
  });
});

describe("targets", () => {
  const results = (smoke: boolean) =>
    ({
      date: "2026-01-02T03:04:05.000Z",
      smoke,
      runtime: "bun 1.4.5",
      machine: { cores: 2, memoryBytes: 8 * 2 ** 30, cpuModel: "cpu", platform: "linux" },
      loadGenerator: { unary: "h2load", streaming: "connect", floor: "kafkajs" },
      settings: { concurrencies: [1], warmupMs: 1, durationMs: 1, partitions: 1 },
      gateway: {},
      scenarios: [],
      targets: [
        { name: "memory per pending call", goal: "≤ 4 KiB", value: "10.92 KiB", pass: false },
        { name: "gateway start to ready", goal: "< 1 s", value: "340 ms", pass: true },
      ],
      problems: [],
    }) as unknown as BenchResults;

  it("are judged on a full run", () => {
    const text = renderText(results(false));
    expect(text).toMatch(/10\.92 KiB +FAIL/);
    expect(text).toMatch(/340 ms +pass/);
  });

  it("are shown but not judged on a smoke run (no thresholds apply to its short windows)", () => {
    for (const text of [renderText(results(true)), renderMarkdown(results(true))]) {
      expect(text).toContain("10.92 KiB");
      expect(text).toContain("not judged");
      expect(text).not.toMatch(/\b(pass|FAIL)\b/);
    }
  });
});

describe("scenario rows", () => {
  const point = (callsPerS: number) => ({
    calls: callsPerS,
    failed: 0,
    callsPerS,
    p50Ms: 1,
    p90Ms: 2,
    p99Ms: 3,
    maxMs: 4,
    meanMs: 1,
    errors: {},
    loadGenerator: "x",
  });
  const results = {
    date: "2026-01-02T03:04:05.000Z",
    smoke: false,
    runtime: "bun 1.4.5",
    machine: { cores: 2, memoryBytes: 8 * 2 ** 30, cpuModel: "cpu", platform: "linux" },
    loadGenerator: { unary: "h2load", streaming: "raw", floor: "kafkajs", native: "own client" },
    settings: { concurrencies: [64], warmupMs: 1, durationMs: 1, partitions: 1 },
    gateway: {
      pendingMemory: [
        {
          pendingCalls: 100000,
          northBytesPerCall: 6144,
          northHeapBytesPerCall: 4096,
          http2StreamBytes: 2048,
          northToHttp2StreamRatio: 3,
        },
      ],
    },
    scenarios: [
      {
        id: "bidi",
        title: "bidi",
        kind: "bidi",
        payloadBytes: 100,
        points: [
          {
            concurrency: 64,
            gateway: { ...point(500), machineOtherCores: 0.05 },
            floor: { ...point(600), machineOtherCores: 0.9 },
            native: point(2000),
            gatewayToFloorCallsRatio: 0.833,
            gatewayToNativeCallsRatio: 0.25,
          },
        ],
      },
    ],
    targets: [],
    problems: [],
  } as unknown as BenchResults;

  it("show the native floor and the gateway ÷ native ratio beside the kafkajs floor", () => {
    const text = renderText(results);
    expect(text).toContain("native calls/s");
    expect(text).toMatch(/0\.83×.*0\.25×/);
    expect(text).toContain("native floor via own client");
  });

  it("show the CPU a call costs along the whole path, gateway against native floor", () => {
    const withCpu = structuredClone(results);
    const point = withCpu.scenarios[0]?.points[0];
    if (!point?.gateway || !point.native) throw new Error("fixture without a point");
    withCpu.scenarios[0] = {
      ...withCpu.scenarios[0],
      id: "unary-100b",
    } as (typeof withCpu.scenarios)[0];
    Object.assign(point.gateway, {
      cpuSecondsPer1kCalls: 0.055,
      brokerCpuSecondsPer1kCalls: 0.01,
      upstreamCpuSecondsPer1kCalls: 0.008,
    });
    Object.assign(point.native, { cpuSecondsPer1kCalls: 0.02, brokerCpuSecondsPer1kCalls: 0.005 });
    // 0.6 × 2,000 native calls/s × 73 µs: 0.09 cores.
    expect(renderMarkdown(withCpu)).toContain(
      "| 73 µs (55 / 10 / 8) / 25 µs (20 / 5) / 0.34× / 0.09 |",
    );
    // Without the unary point there is nothing to compare: no row rather than a wrong one.
    expect(renderMarkdown(results)).not.toContain("along the whole path");
    // Nor without one of the path's parts (it would count as 0 µs).
    const noUpstream = structuredClone(withCpu);
    const bare = noUpstream.scenarios[0]?.points[0]?.gateway;
    if (bare)
      delete (bare as { upstreamCpuSecondsPer1kCalls?: number }).upstreamCpuSecondsPer1kCalls;
    expect(renderMarkdown(noUpstream)).not.toContain("along the whole path");
  });

  it("show the cores other work took in the gateway's and the floor's windows", () => {
    expect(renderText(results)).toContain("others g/f");
    expect(renderMarkdown(results)).toMatch(/\| 0\.05\/0\.90 \|$/m);
  });

  it("show north's memory per pending call at each count next to a bare HTTP/2 stream", () => {
    expect(renderMarkdown(results)).toContain(
      "north's memory per pending call at 100000 pending (JS heap part) / bare http2 stream / ratio | 6.00 KiB (4.00 KiB) / 2.00 KiB / 3.00×",
    );
  });

  it("say when each scenario started with an unmeasured settle run, and not when none ran", () => {
    const settled = {
      ...results,
      settings: { ...results.settings, settleMs: 8000 },
    } as BenchResults;
    const line = "each scenario starts with an unmeasured 8000 ms run per side at c=64";
    expect(renderMarkdown(settled)).toContain(line);
    expect(renderText(settled)).toContain(line);
    expect(renderMarkdown(results)).not.toContain("unmeasured");
  });
});
