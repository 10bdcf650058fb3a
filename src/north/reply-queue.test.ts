import { describe, expect, test } from "vitest";
import { createReplyQueue } from "./reply-queue.ts";

describe("createReplyQueue", () => {
  test("items pushed before next() are read in order, then the end", async () => {
    const q = createReplyQueue<number>();
    q.push(1);
    q.push(2);
    q.close();
    q.push(3); // ignored: the queue has ended
    expect(await q.next()).toBe(1);
    expect(await q.next()).toBe(2);
    expect(await q.next()).toBeUndefined();
    expect(await q.next()).toBeUndefined();
  });

  test("next() waits for the next push or the end", async () => {
    const q = createReplyQueue<number>();
    const pending = q.next();
    q.push(7);
    expect(await pending).toBe(7);
    const end = q.next();
    q.close();
    expect(await end).toBeUndefined();
  });

  test("a failure is seen after the queued items, then on every next()", async () => {
    const q = createReplyQueue<number>();
    q.push(1);
    q.fail(new Error("gone"));
    expect(await q.next()).toBe(1);
    await expect(q.next()).rejects.toThrow("gone");
    await expect(q.next()).rejects.toThrow("gone");
  });

  test("a failure wakes a waiting next(); the first end wins", async () => {
    const q = createReplyQueue<number>();
    const pending = q.next();
    q.fail(new Error("first"));
    q.fail(new Error("second"));
    q.close();
    await expect(pending).rejects.toThrow("first");
  });
});
