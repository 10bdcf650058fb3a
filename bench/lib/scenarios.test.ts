import { describe, expect, it } from "vitest";
import { runClosedLoop } from "./scenarios.ts";

/** A call that takes `ms` (the work being measured, not a wait of the test). */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("runClosedLoop", () => {
  it("counts only calls that finish inside the measured window, with their latencies", async () => {
    let started = 0;
    const result = await runClosedLoop(
      { concurrency: 2, warmupMs: 30, durationMs: 60 },
      async () => {
        started++;
        await sleep(5);
      },
    );
    expect(result.calls).toBeGreaterThan(0);
    expect(result.calls).toBeLessThan(started);
    expect(result.latenciesMs).toHaveLength(result.calls);
    expect(result.failed).toBe(0);
    expect(result.windowMs).toBe(60);
  });

  it("counts failures with their messages", async () => {
    const result = await runClosedLoop(
      { concurrency: 1, warmupMs: 0, durationMs: 40 },
      async () => {
        await sleep(2);
        throw new Error("boom");
      },
    );
    expect(result.calls).toBe(0);
    expect(result.failed).toBeGreaterThan(0);
    expect(result.errors.boom).toBe(result.failed);
  });

  it("keeps a window open until a call slower than the window finishes", async () => {
    const result = await runClosedLoop({ concurrency: 1, warmupMs: 0, durationMs: 10 }, () =>
      sleep(100),
    );
    expect(result.calls).toBe(1);
    expect(result.windowMs).toBeGreaterThan(50);
    expect(result.windowMs).toBeLessThan(5_000);
  });
});
