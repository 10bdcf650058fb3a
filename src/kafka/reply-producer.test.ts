import { describe, expect, it } from "vitest";
import { createBatchQueue } from "./reply-producer.ts";

describe("createBatchQueue", () => {
  it("gathers one turn's items into one flush and keeps their order", async () => {
    const flushes: number[][] = [];
    const queue = createBatchQueue<number>(async (items) => {
      flushes.push(items);
    });
    await Promise.all([queue.push(1), queue.push(2), queue.push(3)]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });

  it("keeps one flush in flight and gathers what arrives meanwhile", async () => {
    const flushes: number[][] = [];
    let release: (() => void) | undefined;
    const queue = createBatchQueue<number>(async (items) => {
      flushes.push(items);
      if (flushes.length === 1) await new Promise<void>((r) => (release = r));
    });
    const first = queue.push(1);
    await new Promise((r) => setImmediate(r));
    expect(flushes).toEqual([[1]]);
    const later = [queue.push(2), queue.push(3)];
    await new Promise((r) => setImmediate(r));
    expect(flushes).toHaveLength(1);
    release?.();
    await Promise.all([first, ...later]);
    expect(flushes).toEqual([[1], [2, 3]]);
  });

  it("rejects the items of a failed flush only and splits large batches", async () => {
    const flushes: number[][] = [];
    const queue = createBatchQueue<number>(async (items) => {
      flushes.push(items);
      if (items.includes(2)) throw new Error("broker down");
    }, 2);
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => queue.push(n)));
    expect(flushes).toEqual([[1, 2], [3, 4], [5]]);
    expect(results.map((r) => r.status)).toEqual([
      "rejected",
      "rejected",
      "fulfilled",
      "fulfilled",
      "fulfilled",
    ]);
    await queue.drain();
  });

  it("with an ordering, overlaps flushes of other keys and holds a key in flight", async () => {
    const flushes: string[][] = [];
    const releases: (() => void)[] = [];
    const queue = createBatchQueue<string>(
      async (items) => {
        flushes.push(items);
        await new Promise<void>((r) => releases.push(r));
      },
      1000,
      { maxInFlight: 4, keysOf: (item) => [item.slice(0, 1)] },
    );
    const a1 = queue.push("a1");
    await new Promise((r) => setImmediate(r));
    const b1 = queue.push("b1");
    await new Promise((r) => setImmediate(r));
    // b1 shares no key with what is in flight: it went at once.
    expect(flushes).toEqual([["a1"], ["b1"]]);
    const a2 = queue.push("a2");
    await new Promise((r) => setImmediate(r));
    expect(flushes).toHaveLength(2); // a2 waits for a1
    releases[0]?.();
    await a1;
    await new Promise((r) => setImmediate(r));
    expect(flushes).toEqual([["a1"], ["b1"], ["a2"]]);
    releases[1]?.();
    releases[2]?.();
    await Promise.all([b1, a2]);
    await queue.drain();
  });
});
