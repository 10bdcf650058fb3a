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
      { maxInFlight: 4, keyOf: (item) => item.slice(0, 1) },
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

  it("with a size, no flush passes it (an item larger goes alone) and a key keeps its order", async () => {
    const flushes: string[][] = [];
    // Items "<key><n>:<bytes>"; the key is the first letter.
    const bytesOf = (item: string) => Number(item.split(":")[1]);
    const queue = createBatchQueue<string>(
      async (items) => {
        flushes.push(items);
      },
      1000,
      { maxInFlight: 4, keyOf: (item) => item.slice(0, 1) },
      { maxBytes: 900, bytesOf },
    );
    const items = ["a1:300", "b1:300", "a2:400", "c1:2000", "a3:100", "d1:100"];
    await Promise.all(items.map((i) => queue.push(i)));
    for (const flush of flushes) {
      const bytes = flush.reduce((n, i) => n + bytesOf(i), 0);
      expect(flush.length === 1 || bytes <= 900).toBe(true);
    }
    expect(flushes.flat().sort()).toEqual([...items].sort());
    // Each key's items left in push order, each flush after the one before had settled.
    const order = (key: string) => flushes.flat().filter((i) => i.startsWith(key));
    expect(order("a")).toEqual(["a1:300", "a2:400", "a3:100"]);
    expect(flushes[0]).toEqual(["a1:300", "b1:300"]);
    await queue.drain();
  });

  it("a failed item takes its key's queued items with it, not other keys or later pushes", async () => {
    const flushes: string[][] = [];
    let releaseFirst: (() => void) | undefined;
    const queue = createBatchQueue<string>(
      async (items, settle) => {
        flushes.push(items);
        if (items.includes("a1")) {
          await new Promise<void>((r) => (releaseFirst = r));
          settle(items.indexOf("a1"), new Error("refused"));
        }
      },
      1000,
      { maxInFlight: 4, keyOf: (item) => item.slice(0, 1) },
    );
    const a1 = queue.push("a1");
    await new Promise((r) => setImmediate(r));
    // Behind a1 (its key is in flight): a2 and a3 wait; b1 goes beside it.
    const waiting = Promise.allSettled(["a2", "a3", "b1"].map((i) => queue.push(i)));
    await new Promise((r) => setImmediate(r));
    expect(flushes).toEqual([["a1"], ["b1"]]);
    releaseFirst?.();
    await expect(a1).rejects.toThrow("refused");
    const settled = await waiting;
    expect(settled.map((r) => r.status)).toEqual(["rejected", "rejected", "fulfilled"]);
    // a2 and a3 never left: a reply must not go on past a lost record.
    expect(flushes.flat()).not.toContain("a2");
    // What the call writes next (its reply again, or an error end) goes out as usual.
    await queue.push("a4");
    expect(flushes.at(-1)).toEqual(["a4"]);
    await queue.drain();
  });
});
