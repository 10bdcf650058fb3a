import { describe, expect, it } from "vitest";
import { isRebalancing, recordFromKafka } from "./group-consumer.ts";

describe("recordFromKafka", () => {
  it("converts a kafkajs message to a contract record", () => {
    const record = recordFromKafka("requests", 2, {
      offset: "9007199254740993",
      key: Buffer.from("id-1"),
      value: Buffer.from([0x0a, 0x02, 0x68, 0x69]),
      timestamp: "1700000000000",
      headers: {
        "zilla:correlation-id": Buffer.from("id-1"),
        "meta:x": [Buffer.from("a"), Buffer.from("b")],
      },
    });
    expect(record).toEqual({
      topic: "requests",
      partition: 2,
      offset: 9007199254740993n,
      key: "id-1",
      value: Uint8Array.from([0x0a, 0x02, 0x68, 0x69]),
      headers: [
        ["zilla:correlation-id", "id-1"],
        ["meta:x", "a"],
        ["meta:x", "b"],
      ],
      timestampMs: 1700000000000,
    });
  });

  it("keeps tombstones, empty values and missing keys apart", () => {
    const tombstone = recordFromKafka("t", 0, {
      offset: "1",
      key: null,
      value: null,
      timestamp: "0",
    });
    expect(tombstone.value).toBeNull();
    expect(tombstone.key).toBeNull();
    const empty = recordFromKafka("t", 0, {
      offset: "2",
      key: Buffer.alloc(0),
      value: Buffer.alloc(0),
      timestamp: "0",
    });
    expect(empty.value).toEqual(new Uint8Array(0));
    expect(empty.key).toBe("");
  });
});

describe("isRebalancing", () => {
  it("recognises kafkajs' rebalance errors only", () => {
    expect(isRebalancing({ type: "REBALANCE_IN_PROGRESS" })).toBe(true);
    expect(isRebalancing({ type: "ILLEGAL_GENERATION" })).toBe(true);
    expect(isRebalancing({ type: "UNKNOWN_MEMBER_ID" })).toBe(false);
    expect(isRebalancing(new Error("x"))).toBe(false);
    expect(isRebalancing(null)).toBe(false);
  });
});
