import { describe, expect, it } from "vitest";
import { defaultCorrelationHeaders } from "../config/types.ts";
import { createCorrelationId } from "../kafka/correlation-id.ts";
import { isKeyedCall } from "./record-router.ts";

const parsed = (correlationId: string, metadata: [string, string][] = []) => ({
  correlationId,
  metadata,
  headers: [],
});
const northId = (idempotencyKey?: string) =>
  createCorrelationId({
    idempotencyKey,
    service: "s",
    method: "m",
    replyTo: "r",
    headers: defaultCorrelationHeaders,
  });

describe("isKeyedCall", () => {
  it("is keyed when the request carries the idempotency metadata", () => {
    expect(isKeyedCall(parsed(northId("k"), [["idempotency-key", "k"]]), "idempotency-key")).toBe(
      true,
    );
  });

  it("is not keyed when north made the id at random", () => {
    expect(isKeyedCall(parsed(northId()), "idempotency-key")).toBe(false);
    // Other metadata does not make it keyed.
    expect(isKeyedCall(parsed(northId(), [["x-other", "k"]]), "idempotency-key")).toBe(false);
  });

  it("is keyed when another producer chose the id (it may write it again)", () => {
    expect(isKeyedCall(parsed("order-17"), "idempotency-key")).toBe(true);
    expect(isKeyedCall(parsed(northId("my-key")), "idempotency-key")).toBe(true);
  });
});
