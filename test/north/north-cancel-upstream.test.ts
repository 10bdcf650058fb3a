/**
 * client.cancel.reaches.upstream: a caller that cancels while its call waits at the upstream
 * makes north write a second end marker, west cancels the upstream call, and the reply's end
 * tombstone carries CANCELLED — the upstream stopped waiting instead of running to the end.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { replyTopic, requestTopic, type Stack, startStack } from "../support/stack.ts";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
});

interface Seen {
  key: string;
  value: Buffer | null;
  status?: string;
}

/** Every record of `topic` whose key starts with `prefix`, as they arrive. */
async function watchTopic(
  topic: string,
  prefix: string,
): Promise<{ seen: Seen[]; stop(): Promise<void> }> {
  const seen: Seen[] = [];
  const consumer = stack.kafka.consumer({
    groupId: `watch-${topic}-${prefix}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const key = message.key?.toString() ?? "";
      if (!key.startsWith(prefix)) return;
      seen.push({
        key,
        value: message.value,
        status: message.headers?.["zilla:status"]?.toString(),
      });
    },
  });
  return { seen, stop: () => consumer.disconnect() };
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 20_000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!done()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 20 },
  );
}

test("client.cancel.reaches.upstream", async () => {
  const key = "cancel-upstream-1";
  const requests = await watchTopic(requestTopic, key);
  const replies = await watchTopic(replyTopic, key);
  try {
    const controller = new AbortController();
    const call = stack.client
      .unaryEcho(
        { message: "delay:20000:hold" },
        { signal: controller.signal, headers: { "idempotency-key": key } },
      )
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    await waitFor("the upstream call", () =>
      stack.echo.requests.some((r) => r.messages[0] === "delay:20000:hold"),
    );
    const started = Date.now();
    controller.abort();
    expect((await call)?.code).toBe(Code.Canceled);

    // The request: its message, its end marker, then the cancel marker.
    await waitFor("three request records", () => requests.seen.length >= 3);
    expect(requests.seen.map((r) => r.value === null)).toEqual([false, true, true]);

    // West cancelled the upstream call long before its 20 s delay, and said so on the reply.
    await waitFor("the reply's end tombstone", () => replies.seen.some((r) => r.value === null));
    const end = replies.seen.find((r) => r.value === null);
    expect(end?.status).toBe(String(Code.Canceled));
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    await requests.stop();
    await replies.stop();
  }
});
