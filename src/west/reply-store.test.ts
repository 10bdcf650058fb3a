import { describe, expect, it } from "vitest";
import { createReplyStore } from "./reply-store.ts";

describe("createReplyStore", () => {
  it("keeps an entry for its retention time only", () => {
    let t = 1000;
    const evicted: string[] = [];
    const store = createReplyStore<string>({
      retentionMs: 100,
      maxEntries: 10,
      maxBytes: 1000,
      now: () => t,
      onEvict: (id) => evicted.push(id),
    });
    store.put("a", "reply-a", 10);
    t += 99;
    expect(store.get("a")).toBe("reply-a");
    t += 1;
    expect(store.get("a")).toBeUndefined();
    expect(evicted).toEqual(["a"]);
    expect(store.bytes).toBe(0);
  });

  it("evicts the oldest entries beyond maxEntries and maxBytes", () => {
    const evicted: string[] = [];
    const store = createReplyStore<number>({
      retentionMs: 60_000,
      maxEntries: 2,
      maxBytes: 100,
      onEvict: (id) => evicted.push(id),
    });
    store.put("a", 1, 10);
    store.put("b", 2, 10);
    store.put("c", 3, 10);
    expect(evicted).toEqual(["a"]);
    expect(store.size).toBe(2);
    store.put("d", 4, 95);
    expect(evicted).toEqual(["a", "b", "c"]);
    expect(store.get("d")).toBe(4);
    expect(store.bytes).toBe(95);
  });

  it("replaces an entry without evicting it and sweeps expired ones", () => {
    let t = 0;
    const evicted: string[] = [];
    const store = createReplyStore<string>({
      retentionMs: 10,
      maxEntries: 10,
      maxBytes: 100,
      now: () => t,
      onEvict: (id) => evicted.push(id),
    });
    store.put("a", "1", 5);
    store.put("a", "2", 7);
    expect(store.bytes).toBe(7);
    expect(evicted).toEqual([]);
    store.put("b", "3", 1);
    t = 10;
    store.sweep();
    expect(store.size).toBe(0);
    expect(evicted).toEqual(["a", "b"]);
  });
});

describe("createReplyStore under churn", () => {
  it("keeps bounds and storing order over many puts, deletes and replacements", () => {
    let t = 0;
    const evicted: string[] = [];
    const store = createReplyStore<number>({
      retentionMs: 1_000,
      maxEntries: 100,
      maxBytes: 1_000_000,
      now: () => t,
      onEvict: (id) => evicted.push(id),
    });
    for (let i = 0; i < 10_000; i++) {
      t = i;
      store.put(`k${i}`, i, 1);
      if (i % 3 === 0) store.delete(`k${i}`);
      if (i % 7 === 0) store.put(`k${i}`, -i, 2);
    }
    expect(store.size).toBeLessThanOrEqual(100);
    // Evictions come oldest first, never an entry that was deleted before.
    const numbers = evicted.map((id) => Number(id.slice(1)));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(numbers.some((n) => n % 3 === 0 && n % 7 !== 0)).toBe(false);
    // What is left are the newest entries, and the byte count matches them.
    let expectedBytes = 0;
    for (let i = 9_999; i >= 0; i--) {
      const v = store.get(`k${i}`);
      if (v !== undefined) expectedBytes += i % 7 === 0 ? 2 : 1;
    }
    expect(store.bytes).toBe(expectedBytes);
    t = 20_000;
    store.sweep();
    expect(store.size).toBe(0);
    expect(store.bytes).toBe(0);
  });
});
