import { describe, expect, test } from "vitest";
import { PartitionRing } from "./partition-ring.ts";

const rec = (offset: number, size = 1) => ({ offset, size });

describe("PartitionRing", () => {
  test("serves appended records by sequence number and finds positions", () => {
    const ring = new PartitionRing(4, 1_000, 10);
    expect(ring.seqAt(9)).toBeUndefined();
    expect(ring.seqAt(10)).toBe(0);
    for (const o of [10, 11, 13]) ring.append(rec(o)); // 12 is a gap (compaction, control)
    expect(ring.headOffset).toBe(14);
    expect(ring.at(0)?.offset).toBe(10);
    expect(ring.at(3)).toBeUndefined();
    expect(ring.seqAt(12)).toBe(2);
    expect(ring.seqAt(13)).toBe(2);
    expect(ring.seqAt(14)).toBe(3);
    expect(ring.countFrom(1)).toBe(2);
  });

  test("ignores re-delivered offsets", () => {
    const ring = new PartitionRing(4, 1_000, 0);
    expect(ring.append(rec(0))).toBe(true);
    expect(ring.append(rec(0))).toBe(false);
    expect(ring.length).toBe(1);
  });

  test("evicts the oldest beyond capacity and moves startOffset past it", () => {
    const ring = new PartitionRing(3, 1_000, 0);
    for (let o = 0; o < 5; o++) ring.append(rec(o));
    expect(ring.length).toBe(3);
    expect(ring.firstSeq).toBe(2);
    expect(ring.at(1)).toBeUndefined();
    expect(ring.at(2)?.offset).toBe(2);
    expect(ring.startOffset).toBe(2);
    expect(ring.seqAt(1)).toBeUndefined();
  });

  test("evicts by bytes but keeps the newest record", () => {
    const ring = new PartitionRing(100, 10, 0);
    ring.append(rec(0, 4));
    ring.append(rec(1, 4));
    ring.append(rec(2, 4));
    expect(ring.length).toBe(2);
    expect(ring.bytes).toBe(8);
    ring.append(rec(3, 50));
    expect(ring.length).toBe(1);
    expect(ring.at(ring.firstSeq)?.offset).toBe(3);
  });
});
