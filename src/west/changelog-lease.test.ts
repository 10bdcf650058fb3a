import { describe, expect, it } from "vitest";
import type { JournalOutcome } from "./call-journal.ts";
import { createLeases } from "./changelog-lease.ts";

/** Leases whose writes wait until the test acknowledges them, on a clock the test moves. */
function leasesUnderTest(opts: { minAhead?: number; maxAhead?: number } = {}) {
  const clock = { now: 1_000_000 };
  const writes: { end: bigint; ack(outcome?: JournalOutcome): void }[] = [];
  const leases = createLeases({
    ...opts,
    now: () => clock.now,
    write: (_topic, _partition, end) =>
      new Promise<JournalOutcome>((resolve) => {
        writes.push({ end, ack: (outcome = "written") => resolve(outcome) });
      }),
  });
  const cover = (offset: number) => leases.cover("changelog", 0, BigInt(offset));
  return { clock, writes, cover };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("createLeases", () => {
  it("a first call waits for its lease; calls under it start at once without writing", async () => {
    const { writes, cover } = leasesUnderTest();
    const first = cover(10);
    expect(first).toBeInstanceOf(Promise);
    expect(writes.map((w) => w.end)).toEqual([10n + 1n + 32n]);
    // A second call under the lease being written waits for the same write.
    const second = cover(12);
    expect(writes).toHaveLength(1);
    writes[0]?.ack();
    expect(await first).toBe("written");
    expect(await second).toBe("written");
    expect(cover(20)).toBe("written");
    expect(writes).toHaveLength(1);
  });

  it("writes the next lease ahead of need once half of it is used, and no call waits for it", async () => {
    const { writes, cover } = leasesUnderTest();
    const first = cover(0);
    writes[0]?.ack();
    await first;
    // Covers 0..32; past 16 the next lease is written, while calls go on starting.
    expect(cover(15)).toBe("written");
    expect(writes).toHaveLength(1);
    expect(cover(17)).toBe("written");
    expect(writes).toHaveLength(2);
    expect(cover(18)).toBe("written");
    expect(writes).toHaveLength(2);
    writes[1]?.ack();
    await settled();
    expect(cover(40)).toBe("written");
  });

  it("a lease older than 10 s lets no call start until a new one is acknowledged", async () => {
    const { clock, writes, cover } = leasesUnderTest();
    const first = cover(0);
    writes[0]?.ack();
    await first;
    clock.now += 5_000;
    // Half its time: still good, and renewed ahead.
    expect(cover(1)).toBe("written");
    expect(writes).toHaveLength(2);
    clock.now += 5_000;
    const late = cover(2);
    expect(late).toBeInstanceOf(Promise);
    writes[1]?.ack();
    // The renewal was written 5 s before: still good for the waiting call.
    expect(await late).toBe("written");
  });

  it("a write acknowledged long after the call asked still lets it start: the write was fresh when it asked", async () => {
    const { clock, writes, cover } = leasesUnderTest();
    const first = cover(0);
    clock.now += 30_000;
    writes[0]?.ack();
    expect(await first).toBe("written");
    // It started on that lease; the next call would not, so the next lease is on its way.
    expect(writes).toHaveLength(2);
  });

  it("a call that joins a write issued more than 10 s before it asked waits for a new one", async () => {
    const { clock, writes, cover } = leasesUnderTest();
    void cover(0);
    clock.now += 10_000;
    const joined = cover(1);
    expect(writes).toHaveLength(1);
    writes[0]?.ack();
    await settled();
    expect(writes).toHaveLength(2);
    writes[1]?.ack();
    expect(await joined).toBe("written");
  });

  it("a call past the lease being written asks for one that reaches it", async () => {
    const { writes, cover } = leasesUnderTest();
    const first = cover(0);
    const far = cover(100);
    // 100 offsets at once read as 100 in a tenth of a second: a lease 1,000 further.
    expect(writes.map((w) => w.end)).toEqual([33n, 1_101n]);
    writes[1]?.ack();
    expect(await far).toBe("written");
    writes[0]?.ack();
    expect(await first).toBe("written");
    // The shorter lease acknowledged last does not shorten the longer one.
    expect(cover(120)).toBe("written");
  });

  it("reaches about a second of the partition's traffic ahead, within its bounds", async () => {
    const { clock, writes, cover } = leasesUnderTest({ maxAhead: 4_000 });
    const first = cover(0);
    writes[0]?.ack();
    await first;
    // 3,000 offsets in 1 s since the last write: the next lease reaches 3,000 further.
    clock.now += 1_000;
    const busy = cover(3_000);
    expect(writes[1]?.end).toBe(3_000n + 1n + 3_000n);
    writes[1]?.ack();
    await busy;
    clock.now += 100;
    const faster = cover(9_001);
    expect(writes[2]?.end).toBe(9_001n + 1n + 4_000n);
    writes[2]?.ack();
    await faster;
  });

  it("after a busy spell and a pause, a shorter fresh lease lets the next call start", async () => {
    const { clock, writes, cover } = leasesUnderTest();
    const first = cover(0);
    writes[0]?.ack();
    await first;
    clock.now += 1_000;
    const busy = cover(30);
    writes[1]?.ack();
    await busy;
    expect(writes[1]?.end).toBe(30n + 1n + 32n);
    clock.now += 100;
    // 3,000 offsets in 100 ms: this lease reaches 30,000 further, its ack ahead of need.
    expect(cover(3_030)).toBeInstanceOf(Promise);
    writes[2]?.ack();
    await settled();
    expect(writes[2]?.end).toBe(3_030n + 1n + 30_000n);
    // Quiet for a minute: the long lease is stale; the next lease reaches only 32 past the
    // call, and once it is acknowledged the call starts (it does not ask again and again).
    clock.now += 60_000;
    const after = cover(3_040);
    expect(writes[3]?.end).toBe(3_040n + 1n + 32n);
    writes[3]?.ack();
    expect(await after).toBe("written");
    expect(writes).toHaveLength(4);
  });

  it("passes on a write west gave up (stopped), and the next call asks again", async () => {
    const { writes, cover } = leasesUnderTest();
    const first = cover(0);
    writes[0]?.ack("stopped");
    expect(await first).toBe("stopped");
    const again = cover(0);
    expect(writes).toHaveLength(2);
    writes[1]?.ack();
    expect(await again).toBe("written");
  });
});
