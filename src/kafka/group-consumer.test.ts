import { describe, expect, it } from "vitest";
import {
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  isRebalancing,
  rangeOwner,
} from "./group-consumer.ts";
import { KafkaProtocolError } from "./protocol/errors.ts";

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

describe("rangeOwner", () => {
  it("splits partitions like Kafka's range assignor", () => {
    const owners = (count: number, members: number) =>
      Array.from({ length: count }, (_, p) => rangeOwner(p, count, members));
    expect(owners(7, 3)).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect(owners(6, 3)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(owners(2, 3)).toEqual([0, 1]);
    expect(owners(3, 1)).toEqual([0, 0, 0]);
  });
});

describe("isRebalancing", () => {
  it("recognises rebalance errors from the broker and from kafkajs only", () => {
    expect(isRebalancing(new KafkaProtocolError(27, "rebalance"))).toBe(true);
    expect(isRebalancing(new KafkaProtocolError(22, "generation"))).toBe(true);
    expect(isRebalancing(new KafkaProtocolError(3, "unknown topic"))).toBe(false);
    expect(isRebalancing({ type: "REBALANCE_IN_PROGRESS" })).toBe(true);
    expect(isRebalancing({ type: "ILLEGAL_GENERATION" })).toBe(true);
    expect(isRebalancing(new Error("x"))).toBe(false);
    expect(isRebalancing(null)).toBe(false);
  });
});
