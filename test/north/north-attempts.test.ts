/**
 * A caller whose call expired while west was stalled retries at once with the same
 * idempotency key: both attempts share the correlation id, and west later answers the
 * expired one with DEADLINE_EXCEEDED (and reads the first caller's cancel after the retry's
 * records). North tags each attempt's records (`zilla:attempt`) and west tags its own
 * answers, so the retry ignores the first attempt's answer and is not cancelled by its
 * cancel: it runs once and gets the upstream's reply (docs/contract.md: difference 9).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { ATTEMPT, CORRELATION_ID } from "../../src/kafka/header-names.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { exampleConfig, requestTopic, type Stack, startStack } from "../support/stack.ts";

let stack: Stack;
let west: Gateway | undefined;

beforeAll(async () => {
  // North only: west is "stalled" until the test starts it.
  stack = await startStack({ withWest: false });
});

afterAll(async () => {
  await west?.close(1_000);
  await stack?.close();
});

/** Every request record's attempt tag, for records of correlation ids starting with `prefix`. */
async function attemptTags(prefix: string): Promise<string[]> {
  const consumer = stack.kafka.consumer({ groupId: `tags-${prefix}`, maxWaitTimeInMs: 100 });
  const tags: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic: requestTopic, fromBeginning: true });
  const done = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        const id = message.headers?.[CORRELATION_ID]?.toString() ?? "";
        if (!id.startsWith(prefix)) return;
        tags.push(message.headers?.[ATTEMPT]?.toString() ?? "-");
        // Two records (message and end) per attempt, one cancel from the first caller at most.
        if (tags.length >= 4) resolve();
      },
    });
  });
  await done;
  await consumer.disconnect();
  return tags;
}

test("a.retry.sent.while.west.is.stalled.gets.the.upstreams.reply", {
  timeout: 60_000,
}, async () => {
  const key = "attempts-stalled";
  const headers = { "idempotency-key": key };
  const first = await stack.client
    .unaryEcho({ message: "stalled once" }, { timeoutMs: 1_000, headers })
    .then(
      () => "answered",
      (err) => ConnectError.from(err).code,
    );
  expect(first).toBe(Code.DeadlineExceeded);
  const retry = stack.client.unaryEcho({ message: "stalled once" }, { timeoutMs: 30_000, headers });

  // Each attempt's records carry a tag of their own.
  const tags = await attemptTags(key);
  expect(tags.every((t) => t !== "-")).toBe(true);
  expect(new Set(tags).size).toBe(2);

  const config = exampleConfig(stack.broker.bootstrap, stack.echo.port);
  west = await startGateway({ ...config, north: [] }, { logger: silentLogger });
  expect((await retry).message).toBe("stalled once");
  const runs = stack.echo.requests.filter((r) => r.messages[0] === "stalled once");
  expect(runs.length).toBe(1);
});

test("calls without an idempotency key carry no attempt tag", async () => {
  expect((await stack.client.unaryEcho({ message: "untagged" })).message).toBe("untagged");
  const consumer = stack.kafka.consumer({ groupId: "tags-untagged", maxWaitTimeInMs: 100 });
  const seen: (string | undefined)[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic: requestTopic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value?.toString().includes("untagged") !== true) return;
        seen.push(message.headers?.[ATTEMPT]?.toString());
        resolve();
      },
    });
  });
  await consumer.disconnect();
  expect(seen).toEqual([undefined]);
});
