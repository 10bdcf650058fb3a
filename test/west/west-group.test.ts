/**
 * West as a consumer-group member: work shared between instances, and offsets that are
 * committed only behind replies Kafka acknowledged, so a crash re-delivers.
 */
import { describe, expect, it } from "vitest";
import {
  type EchoServer,
  echoText,
  endOf,
  startEchoServer,
  startWestBench,
  waitFor,
} from "./west-harness.ts";

describe("west group", () => {
  it("two.west.instances.one.group", async () => {
    const bench = await startWestBench(4);
    const echoA = await startEchoServer();
    const echoB = await startEchoServer();
    try {
      // Each instance calls its own upstream, so the upstreams tell who served what.
      await bench.startWest(`127.0.0.1:${echoA.port}`);
      await bench.startWest(`127.0.0.1:${echoB.port}`);
      const ids = await Promise.all(
        Array.from({ length: 100 }, (_, i) => bench.request({ messages: [`call ${i}`] })),
      );
      const replies = await Promise.all(ids.map((id) => bench.reply(id)));
      expect(replies.every((r) => endOf(r).status === 0)).toBe(true);
      expect(
        replies.map((r) => r.filter((x) => x.value !== null).map((x) => echoText(x.value))),
      ).toEqual(ids.map((_, i) => [`call ${i}`]));
      // Nothing happens for 500 ms: no stray second answer arrives.
      await new Promise((r) => setTimeout(r, 500));
      for (const id of ids)
        expect(bench.replies.get(id)?.filter((x) => x.value === null)).toHaveLength(1);
      const servedA = echoA.calls.get("UnaryEcho") ?? 0;
      const servedB = echoB.calls.get("UnaryEcho") ?? 0;
      expect(servedA + servedB).toBe(100);
      expect(servedA).toBeGreaterThan(0);
      expect(servedB).toBeGreaterThan(0);
    } finally {
      await bench.close();
      await Promise.all([echoA.close(), echoB.close()]);
    }
  });

  it("commit.after.reply", async () => {
    const bench = await startWestBench(1);
    const echo = await startEchoServer();
    let restarted: EchoServer | undefined;
    try {
      const first = await bench.startWest(`127.0.0.1:${echo.port}`);
      // Offsets 0-1: a slow call; offsets 2-3: a fast one behind it on the same partition.
      const slow = await bench.request({ messages: ["delay:4000:slow"] });
      const fast = await bench.request({ messages: ["fast"] });
      expect(endOf(await bench.reply(fast)).status).toBe(0);
      await waitFor("slow call upstream", () =>
        echo.requests.some((r) => r.messages[0] === "delay:4000:slow"),
      );
      // Nothing happens for 1 s (several commit ticks): the fast call is done but the slow one
      // holds the commit.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await bench.committed()).toBeLessThanOrEqual(0n);
      expect(bench.replies.get(slow)).toBeUndefined();

      // Killed mid-call: no reply, no commit.
      await first.crash();
      expect(await bench.committed()).toBeLessThanOrEqual(0n);

      restarted = await startEchoServer();
      await bench.startWest(`127.0.0.1:${restarted.port}`);
      const replies = await bench.reply(slow, 1, 25_000);
      expect(endOf(replies).status).toBe(0);
      expect(replies.filter((r) => r.value !== null).map((r) => echoText(r.value))).toEqual([
        "delay:4000:slow",
      ]);
      // Redone after the restart, not lost.
      expect(restarted.calls.get("UnaryEcho")).toBeGreaterThanOrEqual(1);
      await waitFor("commit past every record", async () => (await bench.committed()) === 4n);
    } finally {
      await bench.close();
      await echo.close();
      await restarted?.close();
    }
  });
  it("rebalance.and.close.lose.no.call", async () => {
    const bench = await startWestBench(4);
    const echo = await startEchoServer();
    try {
      const first = await bench.startWest(`127.0.0.1:${echo.port}`);
      const send = (n: number, tag: string) =>
        Promise.all(
          Array.from({ length: n }, (_, i) =>
            bench.request({ messages: [`delay:800:${tag} ${i}`] }),
          ),
        );
      const ids = await send(10, "before");
      // A second member joins while calls are in flight: partitions move between them.
      await bench.startWest(`127.0.0.1:${echo.port}`);
      ids.push(...(await send(10, "during")));
      // The first leaves cleanly: it finishes its calls, commits, and the other takes over.
      await first.close(5_000);
      ids.push(...(await send(10, "after")));
      const replies = await Promise.all(ids.map((id) => bench.reply(id, 1, 25_000)));
      expect(replies.map((r) => endOf(r).status)).toEqual(ids.map(() => 0));
    } finally {
      await bench.close();
      await echo.close();
    }
  });
});
