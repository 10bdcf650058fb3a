import { describe, expect, it } from "vitest";
import { createPartitionTracker, type OffsetSpan } from "./commit-tracker.ts";

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
    expect(t.size).toBe(0);
  });

  it("agrees with a scan of every span, over random interleavings of calls", () => {
    /** The rule by brute force: scan all spans ever opened, from the first. */
    const reference = (all: readonly OffsetSpan[], lastSeen: bigint): bigint => {
      if (all.length === 0) return lastSeen + 1n;
      let best = (all[0] as OffsetSpan).first;
      let maxLast = -1n;
      for (const [i, span] of all.entries()) {
        if (i > 0 && maxLast < span.first) best = span.first;
        if (!span.done) return best;
        if (span.last > maxLast) maxLast = span.last;
      }
      return lastSeen + 1n;
    };
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let round = 0; round < 20; round++) {
      const t = createPartitionTracker();
      const all: OffsetSpan[] = [];
      const open: OffsetSpan[] = [];
      let offset = 0n;
      for (let step = 0; step < 3000; step++) {
        const r = random();
        if (r < 0.3 || open.length === 0) {
          const span = t.open(offset++);
          all.push(span);
          // a record that needed no call is done at once
          if (random() < 0.2) span.done = true;
          else open.push(span);
        } else if (r < 0.6) {
          t.extend(open[Math.floor(random() * open.length)] as OffsetSpan, offset++);
        } else if (r < 0.85) {
          const [span] = open.splice(Math.floor(random() * open.length), 1);
          if (span) span.done = true;
        } else {
          const cut = t.committable();
          expect(cut).toBe(reference(all, offset - 1n));
        }
      }
      for (const span of open) span.done = true;
      expect(t.committable()).toBe(offset);
    }
  });

  it("holds only the spans it has not passed, while interleaved streams never leave a cut", () => {
    const t = createPartitionTracker();
    // Call i has records at 2i and 2i+3: each straddles the next call's first record.
    const spans: OffsetSpan[] = [];
    let largest = 0;
    for (let i = 0; i < 20_000; i++) {
      spans.push(t.open(BigInt(2 * i)));
      if (i > 0) t.extend(spans[i - 1] as OffsetSpan, BigInt(2 * i + 1));
      if (i >= 8) (spans[i - 8] as OffsetSpan).done = true;
      if (i % 100 === 0) {
        // No call ever ends before the next one's first record: the cut stays at the start.
        expect(t.committable()).toBe(0n);
        largest = Math.max(largest, t.size);
      }
    }
    // The spans passed were dropped: what is held is the calls in flight and the last 100
    // spans' worth, not all 20,000 (the cut could not move).
    expect(largest).toBeLessThan(2_200);
    expect(t.size).toBeLessThan(2_200);
  });
});
