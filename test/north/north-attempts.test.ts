/**
 * A caller whose call expired while west was stalled retries at once with the same
 * idempotency key: both attempts share the correlation id, and west later answers the
 * expired one with DEADLINE_EXCEEDED (and reads the first caller's cancel after the retry's
 * records). North tags each attempt's records (`zilla:attempt`) and west tags its own
 * answers, so the retry ignores the first attempt's answer and is not cancelled by its
 * cancel: it runs once and gets the upstream's reply (docs/contract.md: difference 9).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { KafkaMessage } from "kafkajs";
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

/**
 * The attempt tags ("-" when untagged) of the first `count` request records that `matches`,
 * read with kafkajs from the start of the request topic.
 */
async function attemptTags(
  group: string,
  matches: (message: KafkaMessage) => boolean,
  count: number,
): Promise<string[]> {
  const consumer = stack.kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  const tags: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic: requestTopic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        if (!matches(message)) return;
        tags.push(message.headers?.[ATTEMPT]?.toString() ?? "-");
        if (tags.length >= count) resolve();
      },
    });
  });
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
  // Two records (message and end) per attempt, one cancel from the first caller at most.
  const ofKey = (m: KafkaMessage) =>
    m.headers?.[CORRELATION_ID]?.toString().startsWith(key) === true;
  const tags = await attemptTags(`tags-${key}`, ofKey, 4);
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
  const untagged = (m: KafkaMessage) => m.value?.toString().includes("untagged") === true;
  expect(await attemptTags("tags-untagged", untagged, 1)).toEqual(["-"]);
});
