import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { ProducerSequences } from "./producer-sequences.ts";

const batch = (producerEpoch: number, baseSequence: number, count = 1) => ({
  producerId: 42,
  producerEpoch,
  baseSequence,
  lastOffsetDelta: count - 1,
});

describe("ProducerSequences", () => {
  it("lets non-idempotent batches through without state", () => {
    const s = new ProducerSequences();
    const plain = { producerId: -1, producerEpoch: -1, baseSequence: -1, lastOffsetDelta: 0 };
    expect(s.check(plain).kind).toBe("append");
    s.record(plain, 0);
    expect(s.check(plain).kind).toBe("append");
  });

  it("accepts consecutive sequences and answers a retried batch with its offset", () => {
    const s = new ProducerSequences();
    expect(s.check(batch(0, 0, 3))).toEqual({ kind: "append" });
    s.record(batch(0, 0, 3), 10);
    expect(s.check(batch(0, 3, 2))).toEqual({ kind: "append" });
    s.record(batch(0, 3, 2), 13);
    expect(s.check(batch(0, 0, 3))).toEqual({ kind: "duplicate", baseOffset: 10 });
    expect(s.check(batch(0, 3, 2))).toEqual({ kind: "duplicate", baseOffset: 13 });
  });

  it("refuses gaps, a non-zero first sequence and stale epochs", () => {
    const s = new ProducerSequences();
    expect(s.check(batch(0, 5))).toEqual({
      kind: "error",
      errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    });
    s.record(batch(1, 0), 0);
    expect(s.check(batch(1, 2))).toMatchObject({
      errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    });
    expect(s.check(batch(0, 1))).toMatchObject({ errorCode: ErrorCode.INVALID_PRODUCER_EPOCH });
    // A new epoch starts over at zero.
    expect(s.check(batch(2, 0)).kind).toBe("append");
    expect(s.check(batch(2, 1)).kind).toBe("error");
  });

  it("remembers only the last five batches for duplicate detection", () => {
    const s = new ProducerSequences();
    for (let i = 0; i < 6; i++) s.record(batch(0, i), 100 + i);
    expect(s.check(batch(0, 0)).kind).toBe("error");
    expect(s.check(batch(0, 1))).toEqual({ kind: "duplicate", baseOffset: 101 });
  });

  it("wraps the sequence from INT32_MAX to 0", () => {
    const s = new ProducerSequences();
    s.record(batch(0, 0), 0);
    s.record(batch(0, 0x7ffffffe, 2), 1);
    expect(s.check(batch(0, 0, 2)).kind).toBe("append");
    expect(s.check(batch(0, 1, 2)).kind).toBe("error");
  });
});
