import { describe, expect, it } from "vitest";
import { isRebalancing, RebalancingError } from "./group-consumer.ts";
import { KafkaProtocolError } from "./protocol/errors.ts";

describe("isRebalancing", () => {
  it("recognises rebalance errors from the broker and from kafkajs only", () => {
    expect(isRebalancing(new KafkaProtocolError(27, "rebalance"))).toBe(true);
    expect(isRebalancing(new KafkaProtocolError(22, "generation"))).toBe(true);
    expect(isRebalancing(new KafkaProtocolError(3, "unknown topic"))).toBe(false);
    expect(isRebalancing({ type: "REBALANCE_IN_PROGRESS" })).toBe(true);
    expect(isRebalancing({ type: "ILLEGAL_GENERATION" })).toBe(true);
    expect(isRebalancing(new KafkaProtocolError(25, "unknown member"))).toBe(true);
    expect(isRebalancing(new RebalancingError("rebalancing"))).toBe(true);
    expect(isRebalancing(new Error("x"))).toBe(false);
    expect(isRebalancing(null)).toBe(false);
  });
});
