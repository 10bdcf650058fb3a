/**
 * A partition moves to a second west instance while its calls run: the new owner restores
 * the partition's changelog before reading it, so calls the first instance answered (not yet
 * committed) are answered again from the changelog, not executed; a call still inside the
 * upstream when the first instance let the partition go is sent once more, as attempt 2.
 */
import { describe, expect, it } from "vitest";
import { echoText, endOf, startEchoServer, startWestBench } from "./west-harness.ts";

const keyed = (name: string) => ({
  id: `${name}-0123456789abcdef0123456789abcdef`,
  metadata: [["idempotency-key", name]] as [string, string][],
});

describe("west partition takeover", () => {
  it("moved.partition.runs.nothing.twice.but.the.call.inside.the.upstream", {
    timeout: 60_000,
  }, async () => {
    const bench = await startWestBench(2);
    const echoA = await startEchoServer();
    const echoB = await startEchoServer();
    try {
      // A short grace: the held calls are still running when the partitions move.
      const tuning = { rebalanceGraceMs: 300 };
      await bench.startWest(`127.0.0.1:${echoA.port}`, undefined, tuning);
      // On each partition: a call the upstream holds 6 s (it holds the commit point), then
      // five calls answered behind it.
      const held = [0, 1].map((p) => ({
        ...keyed(`held-${p}`),
        partition: p,
        messages: [`delay:6000:held ${p}`],
      }));
      for (const call of held) await bench.request(call);
      await expect.poll(() => echoA.requests.length, { timeout: 10_000 }).toBe(2);
      const fast = [0, 1].flatMap((p) =>
        Array.from({ length: 5 }, (_, i) => ({
          ...keyed(`fast-${p}-${i}`),
          partition: p,
          messages: [`fast ${p} ${i}`],
        })),
      );
      for (const call of fast) await bench.request(call);
      await Promise.all(fast.map((c) => bench.reply(c.id)));

      // A second instance joins: one partition moves to it.
      await bench.startWest(`127.0.0.1:${echoB.port}`, undefined, tuning);
      const replies = await Promise.all(
        [...held, ...fast].map((c) => bench.reply(c.id, 1, 30_000)),
      );
      expect(replies.map((r) => endOf(r).status)).toEqual(replies.map(() => 0));
      expect(
        replies
          .slice(0, 2)
          .map((r) => r.filter((x) => x.value !== null).map((x) => echoText(x.value))),
      ).toEqual([["delay:6000:held 0"], ["delay:6000:held 1"]]);
      await expect.poll(() => echoB.requests.length, { timeout: 20_000 }).toBeGreaterThan(0);

      // Answered calls ran once, wherever their partition went.
      const all = [...echoA.requests, ...echoB.requests];
      for (const call of fast) {
        expect(all.filter((r) => r.messages[0] === call.messages[0])).toHaveLength(1);
      }
      expect(echoB.requests.every((r) => r.messages[0]?.startsWith("delay:6000:held"))).toBe(true);
      // The moved partition's held call: once on each instance, the second saying so.
      expect(echoB.requests).toHaveLength(1);
      const moved = echoB.requests[0];
      expect(moved?.headers.get("grpc-previous-rpc-attempts")).toBe("1");
      const first = echoA.requests.find((r) => r.messages[0] === moved?.messages[0]);
      expect(first?.headers.get("grpc-previous-rpc-attempts")).toBeNull();
      expect(moved?.headers.get("idempotency-key")).toBe(first?.headers.get("idempotency-key"));
      // The partition that stayed: its held call ran once.
      expect(
        echoA.requests.filter((r) => r.messages[0]?.startsWith("delay:6000:held")),
      ).toHaveLength(2);
      for (const p of [0, 1]) {
        await expect.poll(() => bench.committed(p), { timeout: 20_000 }).toBe(12n);
      }
    } finally {
      await bench.close();
      await Promise.all([echoA.close(), echoB.close()]);
    }
  });
});
