import { describe, expect, it } from "vitest";
import { createDeadlineQueue, type Expiring } from "./deadline-queue.ts";

/** An entry that records when it expired, in the order of the shared log. */
function entry(name: string, log: string[]): Expiring {
  return {
    dueMs: 0,
    queueIndex: -1,
    expire() {
      log.push(name);
    },
  };
}

describe("deadline queue", () => {
  it("expires entries in deadline order, whatever order they were added in", async () => {
    const queue = createDeadlineQueue();
    const log: string[] = [];
    const delays = [40, 10, 30, 20, 50, 5, 45, 15];
    for (const ms of delays) queue.add(entry(String(ms), log), ms);
    await expect.poll(() => log.length, { timeout: 2_000 }).toBe(delays.length);
    expect(log).toEqual([...delays].sort((a, b) => a - b).map(String));
    expect(queue.size).toBe(0);
  });

  it("a removed entry never expires, and the others still do", async () => {
    const queue = createDeadlineQueue();
    const log: string[] = [];
    const entries = [5, 10, 15, 20, 25].map((ms) => {
      const e = entry(String(ms), log);
      queue.add(e, ms);
      return e;
    });
    // The earliest (the timer is armed for it), one in the middle, and the last.
    for (const i of [0, 2, 4]) queue.remove(entries[i] as Expiring);
    queue.remove(entries[0] as Expiring); // twice: nothing happens
    expect(queue.size).toBe(2);
    await expect.poll(() => log.length, { timeout: 2_000 }).toBe(2);
    expect(log).toEqual(["10", "20"]);
    expect(entries.map((e) => e.queueIndex)).toEqual([-1, -1, -1, -1, -1]);
  });

  it("an earlier entry added later re-arms the timer for it", async () => {
    const queue = createDeadlineQueue();
    const log: string[] = [];
    const startedAt = performance.now();
    const late = entry("late", log);
    queue.add(late, 10_000);
    let soonAt = 0;
    const soon = entry("soon", log);
    soon.expire = () => {
      soonAt = performance.now();
      log.push("soon");
    };
    queue.add(soon, 20);
    await expect.poll(() => log, { timeout: 2_000 }).toEqual(["soon"]);
    expect(soonAt - startedAt).toBeGreaterThanOrEqual(19);
    expect(queue.size).toBe(1);
    queue.remove(late);
    expect(queue.size).toBe(0);
  });

  it("one entry whose expire throws does not stop the others", async () => {
    const thrown: unknown[] = [];
    const queue = createDeadlineQueue({ onError: (error) => thrown.push(error) });
    const log: string[] = [];
    const failing = entry("failing", log);
    failing.expire = () => {
      throw new Error("boom");
    };
    queue.add(failing, 5);
    queue.add(entry("same turn", log), 5);
    queue.add(entry("after", log), 30);
    await expect.poll(() => log, { timeout: 2_000 }).toEqual(["same turn", "after"]);
    expect(thrown).toEqual([new Error("boom")]);
  });

  it("waits longer than a runtime timer can (2^31 - 1 ms) without firing early", async () => {
    let nowMs = 0;
    const queue = createDeadlineQueue({ now: () => nowMs });
    const log: string[] = [];
    queue.add(entry("far", log), 3_000_000_000);
    // Armed for the longest a timer takes; moved to the near entry, which finds both due.
    nowMs = 2_999_999_000;
    queue.add(entry("near", log), 0);
    nowMs = 3_000_000_000;
    await expect.poll(() => log, { timeout: 2_000 }).toEqual(["near", "far"]);
    expect(queue.size).toBe(0);
  });
});
