import { describe, expect, it } from "vitest";
import { createReadiness } from "./readiness.ts";

describe("readiness", () => {
  it("is not ready until every expected part is, and never again once closing", async () => {
    const readiness = createReadiness();
    const west = readiness.expect("west w");
    const north = readiness.expect("north n");
    expect(await readiness.check()).toEqual({
      ready: false,
      reasons: ["west w: starting", "north n: starting"],
    });
    west.ready();
    north.ready();
    expect(await readiness.check()).toEqual({ ready: true, reasons: [] });
    north.unready("reader failed");
    expect(readiness.snapshot().reasons).toEqual(["north n: reader failed"]);
    north.remove();
    expect(readiness.snapshot().ready).toBe(true);
    readiness.closing();
    expect(await readiness.check()).toEqual({ ready: false, reasons: ["shutting down"] });
  });

  it("asks Kafka, caches the answer, and counts a hanging probe as a failure", async () => {
    const readiness = createReadiness({ cacheMs: 60_000, probeTimeoutMs: 50 });
    let calls = 0;
    readiness.setKafkaProbe(async () => {
      calls++;
    });
    expect((await readiness.check()).ready).toBe(true);
    expect((await readiness.check()).ready).toBe(true);
    expect(calls).toBe(1);

    readiness.setKafkaProbe(() => Promise.reject(new Error("connection refused")));
    expect(await readiness.check()).toEqual({
      ready: false,
      reasons: ["kafka: connection refused"],
    });

    readiness.setKafkaProbe(() => new Promise(() => {}));
    expect(await readiness.check()).toEqual({
      ready: false,
      reasons: ["kafka: no answer within 50 ms"],
    });
  });

  it("asks watched parts on every check, with reasons that come and go", async () => {
    const readiness = createReadiness();
    const west = readiness.expect("west w consumer group");
    west.ready();
    let rebalancing = false;
    let stuck: string[] = [];
    west.watch(() => (rebalancing ? ["rebalancing for 12.0 s"] : []));
    const unwatch = west.watch(() => stuck);
    expect(await readiness.check()).toEqual({ ready: true, reasons: [] });
    rebalancing = true;
    stuck = ["t-2 is assigned but has no position"];
    expect((await readiness.check()).reasons).toEqual([
      "west w consumer group: rebalancing for 12.0 s",
      "west w consumer group: t-2 is assigned but has no position",
    ]);
    rebalancing = false;
    unwatch();
    expect(await readiness.check()).toEqual({ ready: true, reasons: [] });
    west.watch(() => {
      throw new Error("boom");
    });
    expect(readiness.snapshot().reasons).toEqual([
      "west w consumer group: readiness check failed: boom",
    ]);
  });
});
