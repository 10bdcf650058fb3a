import { describe, expect, it } from "vitest";
import {
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
} from "./consumer-protocol.ts";

describe("consumer protocol metadata", () => {
  it("encodes a v0 subscription byte for byte", () => {
    // version 0, one topic "ab", null user data
    expect([...encodeSubscription(["ab"])]).toEqual([
      0, 0, 0, 0, 0, 1, 0, 2, 0x61, 0x62, 0xff, 0xff, 0xff, 0xff,
    ]);
    expect(decodeSubscription(encodeSubscription(["x", "yz"]))).toEqual(["x", "yz"]);
  });

  it("reads the topics of later subscription versions and ignores the rest", () => {
    // v1 adds owned partitions after user data: the topics still come first.
    const v1 = [...encodeSubscription(["t"])];
    v1[1] = 1;
    expect(decodeSubscription(Uint8Array.from([...v1, 0, 0, 0, 0]))).toEqual(["t"]);
  });

  it("round-trips assignments, and an empty assignment means no partitions", () => {
    const parts = [
      { topic: "a", partition: 0 },
      { topic: "a", partition: 2 },
      { topic: "b", partition: 1 },
    ];
    expect(decodeAssignment(encodeAssignment(parts))).toEqual(parts);
    expect(decodeAssignment(new Uint8Array(0))).toEqual([]);
  });
});
