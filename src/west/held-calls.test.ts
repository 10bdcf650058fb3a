import { describe, expect, it } from "vitest";
import type { ConsumedRecord } from "../kafka/group-consumer.ts";
import { createPartitionTracker } from "./commit-tracker.ts";
import { createHeldCalls } from "./held-calls.ts";
import type { SpanRef } from "./west-call.ts";

const record = (offset: number, bytes = 10, partition = 0): ConsumedRecord => ({
  topic: "t",
  partition,
  offset: BigInt(offset),
  key: null,
  value: new Uint8Array(bytes),
  headers: [],
  timestampMs: 0,
});
const parsed = { metadata: [], headers: [] };
const attach = (
  spans: SpanRef[],
  tracker: ReturnType<typeof createPartitionTracker>,
  offset: bigint,
) => {
  const open = spans.find((s) => s.tracker === tracker);
  if (open) tracker.extend(open.span, offset);
  else spans.push({ tracker, span: tracker.open(offset) });
};

describe("createHeldCalls", () => {
  it("gives calls back first in, first out, each with its records and one span", () => {
    const held = createHeldCalls({ maxRecords: 10, maxBytes: 1 << 20 });
    const tracker = createPartitionTracker();
    held.hold("a", record(0), tracker, parsed, attach);
    held.hold("b", record(1), tracker, parsed, attach);
    held.hold("a", record(2), tracker, parsed, attach);
    expect(held.size).toBe(2);
    expect(held.has("a")).toBe(true);
    const [id, call] = held.take() ?? [];
    expect(id).toBe("a");
    expect(call?.records.map((r) => r.record.offset)).toEqual([0n, 2n]);
    expect(call?.spans.map((s) => [s.span.first, s.span.last])).toEqual([[0n, 2n]]);
    expect(call?.key).toBe("t/0");
    expect(held.take()?.[0]).toBe("b");
    expect(held.take()).toBeUndefined();
    // Held records are seen: the commit point stays before them until their calls are done.
    expect(tracker.committable()).toBe(0n);
  });

  it("refuses records past its bounds, but always takes one", () => {
    const held = createHeldCalls({ maxRecords: 2, maxBytes: 1_000 });
    const tracker = createPartitionTracker();
    expect(held.hold("big", record(0, 5_000), tracker, parsed, attach)).toBe(true);
    expect(held.hold("x", record(1), tracker, parsed, attach)).toBe(false);
    expect(held.hasRoom()).toBe(false);
    held.take();
    expect(held.hasRoom()).toBe(true);
    expect(held.hold("x", record(1), tracker, parsed, attach)).toBe(true);
    expect(held.hold("y", record(2), tracker, parsed, attach)).toBe(true);
    expect(held.hold("z", record(3), tracker, parsed, attach)).toBe(false);
  });

  it("drops the calls of partitions no longer its own", () => {
    const held = createHeldCalls({ maxRecords: 10, maxBytes: 1 << 20 });
    const kept = createPartitionTracker();
    const revoked = createPartitionTracker();
    held.hold("a", record(0, 10, 0), kept, parsed, attach);
    held.hold("b", record(0, 10, 1), revoked, parsed, attach);
    held.drop((call) => call.tracker === revoked);
    expect(held.size).toBe(1);
    expect(held.has("b")).toBe(false);
  });
});
