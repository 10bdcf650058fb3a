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
