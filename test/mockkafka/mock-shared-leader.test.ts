/**
 * One broker leading two partitions of a topic: librdkafka 2.0's mock cluster garbles that
 * ListOffsets answer (it names a partition not asked for). The client reports the broken
 * answer and asks that broker one partition at a time from then on, so every partition is
 * positioned and read: calls on each of them are answered.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type MockStack, startMockStack } from "../support/mock-stack.ts";

let stack: MockStack;
beforeAll(async () => {
  stack = await startMockStack({ brokers: 3, leaderOf: (_t, p) => (p === 0 ? 1 : 2) });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

it("answers calls on every partition when one broker leads two of them", async () => {
  const texts = Array.from({ length: 24 }, (_, i) => `shared-${i}`);
  const replies = await Promise.all(
    texts.map((message) => stack.client.unaryEcho({ message }, { timeoutMs: 15_000 })),
  );
  expect(replies.map((r) => r.message)).toEqual(texts);
});
