import { describe, expect, test } from "vitest";
import { createCorrelationId } from "./correlation-id.ts";
import { placeUuid } from "./correlation-placement.ts";
import { murmur2 } from "./murmur2-partitioner.ts";

const encoder = new TextEncoder();
const partitionOf = (key: string, count: number) =>
  (murmur2(encoder.encode(key)) & 0x7fffffff) % count;
const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const headers = {
  service: "zilla:service",
  method: "zilla:method",
  replyTo: "zilla:reply-to",
  correlationId: "zilla:correlation-id",
};

function mask(count: number, owned: number[]): Uint8Array {
  const m = new Uint8Array(count);
  for (const p of owned) m[p] = 1;
  return m;
}

describe("placeUuid", () => {
  test("places every id on an owned partition, as Kafka's partitioner computes it", () => {
    const digest = "46ae5cdb4b46cbb367cbad0bea36a56f";
    for (const [count, owned] of [
      [16, [3]],
      [16, [0, 15]],
      [3, [1]],
      [20, [2, 7, 11, 19]],
      [1000, [999]],
    ] as const) {
      const ownedMask = mask(count, [...owned]);
      for (let i = 0; i < 200; i++) {
        const placed = placeUuid(digest, count, ownedMask);
        expect(placed?.uuid).toMatch(v4);
        const id = `${placed?.uuid}-${digest}`;
        expect(owned).toContain(partitionOf(id, count));
        expect(placed?.partition).toBe(partitionOf(id, count));
      }
    }
  });

  test("works for ids of any length and non-ASCII text", () => {
    for (const digest of ["", "a", "ab", "abc", "abcd", "héllo ✓ 日本", "x".repeat(81)]) {
      const placed = placeUuid(digest, 7, mask(7, [5]));
      expect(partitionOf(`${placed?.uuid}-${digest}`, 7)).toBe(5);
    }
  });

  test("ids stay unique and spread over the owned partitions", () => {
    const digest = "479f2c3fb58bc3f04bbe15440a657670";
    const seen = new Set<string>();
    const perPartition = new Map<number, number>();
    for (let i = 0; i < 20_000; i++) {
      const placed = placeUuid(digest, 16, mask(16, [4, 9]));
      if (!placed) throw new Error("not placed");
      seen.add(placed.uuid);
      perPartition.set(placed.partition, (perPartition.get(placed.partition) ?? 0) + 1);
    }
    expect(seen.size).toBe(20_000);
    // Both owned partitions get a fair share (each ~10,000).
    expect(perPartition.get(4)).toBeGreaterThan(9_000);
    expect(perPartition.get(9)).toBeGreaterThan(9_000);
  });

  test("gives up when no partition is owned", () => {
    expect(placeUuid("-abc", 4, new Uint8Array(4))).toBeUndefined();
  });

  test("createCorrelationId keeps the uuid-md5hex form with a chooser", () => {
    const input = {
      service: "grpc.examples.echo.Echo",
      method: "BidirectionalStreamingEcho",
      replyTo: "echo-responses",
      headers,
    };
    let got = "";
    const id = createCorrelationId(input, (digest) => {
      got = digest;
      return placeUuid(digest, 16, mask(16, [6]))?.uuid ?? "";
    });
    expect(got).toBe("46ae5cdb4b46cbb367cbad0bea36a56f");
    expect(id).toMatch(/^[0-9a-f-]{36}-46ae5cdb4b46cbb367cbad0bea36a56f$/);
    expect(partitionOf(id, 16)).toBe(6);
    // An idempotency key fixes the prefix: the chooser is not asked.
    const keyed = createCorrelationId({ ...input, idempotencyKey: "k1" }, () => {
      throw new Error("asked");
    });
    expect(keyed).toBe("k1-46ae5cdb4b46cbb367cbad0bea36a56f");
  });
});
