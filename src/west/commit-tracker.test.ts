import { describe, expect, it } from "vitest";
import { createPartitionTracker } from "./commit-tracker.ts";

describe("createPartitionTracker", () => {
  it("commits nothing new before the first record and everything once all are done", () => {
    const t = createPartitionTracker();
    expect(t.committable()).toBe(0n);
    const a = t.open(5n);
    t.extend(a, 6n);
    expect(t.committable()).toBe(5n);
    a.done = true;
    expect(t.committable()).toBe(7n);
  });

  it("never passes an earlier record still in flight", () => {
    const t = createPartitionTracker();
    const slow = t.open(0n);
    t.extend(slow, 1n);
    const fast = t.open(2n);
    t.extend(fast, 3n);
    fast.done = true;
    expect(t.committable()).toBe(0n);
    slow.done = true;
    expect(t.committable()).toBe(4n);
  });

  it("does not cut through a finished call whose records straddle an unfinished one", () => {
    const t = createPartitionTracker();
    const a = t.open(0n); // A1
    const b = t.open(1n); // B1
    t.extend(a, 2n); // A2
    t.extend(b, 3n); // B2
    const c = t.open(4n); // C1
    a.done = true;
    // B is in flight; a cut at 1 would re-deliver A2 without A1.
    expect(t.committable()).toBe(0n);
    b.done = true;
    expect(t.committable()).toBe(4n);
    c.done = true;
    expect(t.committable()).toBe(5n);
  });

  it("cuts at the first in-flight call when everything before it is done and closed", () => {
    const t = createPartitionTracker();
    const a = t.open(0n);
    t.extend(a, 1n);
    const b = t.open(2n);
    a.done = true;
    expect(t.committable()).toBe(2n);
    t.release(2n);
    expect(t.size).toBe(1);
    b.done = true;
    expect(t.committable()).toBe(3n);
  });

  it("recognises re-delivered offsets", () => {
    const t = createPartitionTracker();
    t.open(10n).done = true;
    expect(t.seen(9n)).toBe(true);
    expect(t.seen(10n)).toBe(true);
    expect(t.seen(11n)).toBe(false);
  });

  it("releases many spans without growing", () => {
    const t = createPartitionTracker();
    for (let i = 0n; i < 5000n; i++) t.open(i).done = true;
    const cut = t.committable();
    expect(cut).toBe(5000n);
    t.release(cut);
    expect(t.size).toBe(0);
  });
});
