/**
 * West above its bound on concurrent calls: records of calls already running keep being
 * read past the records of calls waiting for a slot, so client streams whose next messages
 * and ends sit behind other calls' records all complete; records of waiting calls are held
 * in a bounded queue, and a full queue pauses the partition until there is room.
 */
import { describe, expect, it } from "vitest";
import { defaultCorrelationHeaders, type ProduceWith } from "../../src/config/types.ts";
import { type ContractRecord, requestHeaders } from "../../src/kafka/record-contract.ts";
import {
  echoBytes,
  echoText,
  endOf,
  replyTopic,
  requestTopic,
  service,
  startEchoServer,
  startWestBench,
} from "./west-harness.ts";

const route: ProduceWith = { capability: "produce", topic: requestTopic, replyTo: replyTopic };

/** The request records of one client-streaming call, as north writes them. */
function clientStream(id: string) {
  const headers = requestHeaders({
    route,
    names: defaultCorrelationHeaders,
    service,
    method: "ClientStreamingEcho",
    correlationId: id,
    metadata: [],
  });
  return {
    message: (text: string): ContractRecord => ({ key: id, value: echoBytes(text), headers }),
    end: (): ContractRecord => ({ key: id, value: null, headers }),
  };
}

describe("west above max concurrent calls", () => {
  it("client.streams.above.the.bound.all.complete", async () => {
    // One partition: every call's records interleave with every other's.
    const bench = await startWestBench(1);
    const echo = await startEchoServer();
    try {
      await bench.startWest(`127.0.0.1:${echo.port}`, (c) => {
        c.options.maxConcurrentCalls = 2;
      });
      const ids = Array.from({ length: 8 }, (_, i) => `stream-${i}-${Date.now()}`);
      const calls = ids.map(clientStream);
      // First messages of all eight calls, then their second messages, then their ends: the
      // two running calls' ends sit behind six other calls' records.
      await bench.produce(calls.map((c, i) => c.message(`${i}a`)));
      await bench.produce(calls.map((c, i) => c.message(`${i}b`)));
      await bench.produce(calls.map((c) => c.end()));

      const replies = await Promise.all(ids.map((id) => bench.reply(id, 1, 25_000)));
      expect(replies.map((r) => endOf(r).status)).toEqual(ids.map(() => 0));
      expect(
        replies.map((r) => r.filter((x) => x.value !== null).map((x) => echoText(x.value))),
      ).toEqual(ids.map((_, i) => [`${i}a,${i}b`]));
      // Every call reached the upstream once, with its whole stream in order.
      expect(echo.calls.get("ClientStreamingEcho")).toBe(8);
      expect(echo.requests.map((r) => r.messages.join(",")).sort()).toEqual(
        ids.map((_, i) => `${i}a,${i}b`).sort(),
      );
    } finally {
      await bench.close();
      await echo.close();
    }
  });

  it("held.records.full.pauses.the.partition.then.every.call.completes", async () => {
    const bench = await startWestBench(1);
    const echo = await startEchoServer();
    try {
      // One call runs, one call's two records are held; the next record is refused.
      await bench.startWest(
        `127.0.0.1:${echo.port}`,
        (c) => {
          c.options.maxConcurrentCalls = 1;
        },
        { heldRecordsMax: 2 },
      );
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await bench.request({ messages: [`delay:200:${i}`] }));
      const replies = await Promise.all(ids.map((id) => bench.reply(id, 1, 25_000)));
      expect(replies.map((r) => endOf(r).status)).toEqual(ids.map(() => 0));
      expect(replies.map((r) => echoText(r.find((x) => x.value !== null)?.value ?? null))).toEqual(
        ids.map((_, i) => `delay:200:${i}`),
      );
      // One at a time, in record order: held calls start first-in, first-out.
      expect(echo.requests.map((r) => r.messages[0])).toEqual(ids.map((_, i) => `delay:200:${i}`));
      await expect.poll(() => bench.committed(), { timeout: 10_000 }).toBe(10n);
    } finally {
      await bench.close();
      await echo.close();
    }
  });
});
