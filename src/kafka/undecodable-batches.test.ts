/**
 * The watch over undecodable batches: who holds what (for /readyz), the log rate limit across
 * readers (a rebalance stops one reader and starts another that meets the same batch), the
 * reminders while held, and the counts.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../ops/logger.ts";
import {
  createUndecodableWatch,
  heldPartitionsReason,
  type UndecodableEvent,
} from "./undecodable-batches.ts";

const event: UndecodableEvent = {
  topic: "t",
  partition: 2,
  baseOffset: 17,
  lastOffset: 19,
  reason: "record batch at offset 17 is corrupt",
};

function setup(policy: "fail" | "skip") {
  const lines: Record<string, unknown>[] = [];
  const counts: string[] = [];
  const changes: number[] = [];
  const watch = createUndecodableWatch({
    policy,
    logger: createLogger("info", (line) => lines.push(JSON.parse(line))),
    remindEveryMs: 60_000,
    metrics: {
      batch: (topic, partition, action) => counts.push(`${action} ${topic}-${partition}`),
      skippedOffsets: (topic, partition, n) => counts.push(`offsets ${topic}-${partition} ${n}`),
      holding: (reader, topic, partition, held) =>
        counts.push(`${held ? "holding" : "released"} ${reader} ${topic}-${partition}`),
    },
    onChange: (held) => changes.push(held.length),
  });
  return { watch, lines, counts, changes };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("undecodable batch watch", () => {
  it("holds, names the partition for /readyz, releases when the reader stops", () => {
    const { watch, counts, changes } = setup("fail");
    const reporter = watch.reporter("west group g");
    reporter.held(event);
    expect(watch.held()).toEqual([
      { reader: "west group g", topic: "t", partition: 2, offset: 17, reason: event.reason },
    ]);
    expect(heldPartitionsReason(watch.held())).toBe(
      "t-2 held at offset 17 by west group g (undecodable batch: record batch at offset 17 is corrupt)",
    );
    reporter.close();
    expect(watch.held()).toEqual([]);
    expect(changes).toEqual([1, 0]);
    expect(counts).toEqual(["held t-2", "holding west group g t-2", "released west group g t-2"]);
    watch.close();
  });

  it("logs a batch once across readers, then reminds once a minute while held", () => {
    vi.useFakeTimers();
    const { watch, lines } = setup("fail");
    const first = watch.reporter("west group g");
    first.held(event);
    first.close();
    // The next member of the group meets the same batch right after the rebalance.
    const second = watch.reporter("west group g");
    second.held(event);
    expect(lines.filter((l) => l.level === "error")).toHaveLength(1);
    expect(lines[0]).toMatchObject({ topic: "t", partition: 2, offset: 17, policy: "fail" });
    vi.advanceTimersByTime(60_000);
    expect(lines.filter((l) => l.level === "error")).toHaveLength(2);
    expect(lines[1]?.msg).toMatch(/still held/);
    second.close();
    vi.advanceTimersByTime(120_000);
    expect(lines.filter((l) => l.level === "error")).toHaveLength(2);
    watch.close();
  });

  it("skip: logs the offset range, counts the batch and its offsets, holds nothing", () => {
    const { watch, lines, counts } = setup("skip");
    const reporter = watch.reporter("fetch t");
    expect(reporter.policy).toBe("skip");
    reporter.skipped(event);
    expect(watch.held()).toEqual([]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        topic: "t",
        partition: 2,
        fromOffset: 17,
        toOffset: 19,
      }),
    ]);
    expect(counts).toEqual(["skipped t-2", "offsets t-2 3"]);
    watch.close();
  });
});
