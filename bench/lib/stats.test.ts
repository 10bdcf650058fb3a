import { describe, expect, it } from "vitest";
import { percentile, summarizeLatencies } from "./stats.ts";

describe("percentile", () => {
  it("takes the nearest rank", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
  });

  it("is NaN without samples", () => {
    expect(percentile([], 0.5)).toBeNaN();
  });
});

describe("summarizeLatencies", () => {
  it("sorts before ranking and averages", () => {
    const summary = summarizeLatencies([3, 1, 2, 4]);
    expect(summary).toEqual({ p50Ms: 2, p90Ms: 4, p99Ms: 4, maxMs: 4, meanMs: 2.5 });
  });
});
