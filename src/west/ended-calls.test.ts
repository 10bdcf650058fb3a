import { describe, expect, it } from "vitest";
import { createPartitionTracker } from "./commit-tracker.ts";
import { completeAfterSettled, createEndedCalls, entryBytes } from "./ended-calls.ts";
import type { EndedCall, SpanRef } from "./west-call.ts";

function call(id: string, fields: Partial<EndedCall> = {}): EndedCall {
  return {
    id,
    kind: "replayable",
    replyTo: "r",
    keyed: true,
    attempt: 1,
    reply: [],
    tooLarge: false,
    replyBytes: 0,
    replyWritten: true,
    position: { topic: "t", partition: 0, offset: 0n },
    finishedAt: 0,
    requestEnded: true,
    tail: [],
    duplicateOpen: false,
    duplicate: [],
    settling: undefined,
    ...fields,
  };
}

function setup(overrides: { maxEntries?: number; maxBytes?: number } = {}) {
  let t = 1_000;
  const completed: SpanRef[] = [];
  const ended = createEndedCalls({
    windowMs: 100,
    tailGraceMs: 50,
    maxEntries: overrides.maxEntries ?? 100,
    maxBytes: overrides.maxBytes ?? 1 << 20,
    complete: (spans) => {
      for (const s of spans) s.span.done = true;
      completed.push(...spans);
    },
    now: () => t,
  });
  return { ended, completed, advance: (ms: number) => (t += ms), now: () => t };
}

const at = (offset: number, partition = 0) => ({ topic: "t", partition, offset: BigInt(offset) });

describe("createEndedCalls", () => {
  it("keeps a keyed call for the window", () => {
    const { ended, advance, now } = setup();
    ended.put(call("k", { finishedAt: now() }));
    advance(99);
    expect(ended.get("k")?.id).toBe("k");
    advance(1);
    expect(ended.get("k")).toBeUndefined();
  });

  it("keeps restored calls that will be delivered again whatever the bounds, until committed past", () => {
    const { ended, advance } = setup({ maxEntries: 2 });
    // A restore: five calls behind the commit point, more than the bounds keep.
    for (let i = 0; i < 5; i++) {
      ended.put(call(`p${i}`, { keyed: i % 2 === 0, position: at(10 - i) }), 2_000, true);
    }
    ended.put(call("n1", { position: at(20) }));
    ended.put(call("n2", { position: at(21) }));
    ended.put(call("n3", { position: at(22) }));
    // the ordinary ones obey the bound (the oldest left); none of the pinned did
    expect(ended.get("n1")).toBeUndefined();
    expect(["n2", "n3"].map((id) => ended.get(id)?.id)).toEqual(["n2", "n3"]);
    for (let i = 0; i < 5; i++) expect(ended.get(`p${i}`)?.id).toBe(`p${i}`);
    expect(ended.size).toBe(7);
    // nor does age take them while they wait
    advance(5_000);
    ended.sweep();
    expect(ended.get("p4")?.id).toBe("p4");
    // committed up to 9: p2 (8), p3 (7) and p4 (6) are passed; un-keyed ones go, the keyed p2
    // and p4 are kept as any call, by the bounds and their (past) expiry
    ended.releaseCommitted({ topic: "t", partition: 0 }, 9n);
    expect(ended.get("p3")).toBeUndefined();
    expect(ended.get("p2")).toBeUndefined();
    expect(["p0", "p1"].map((id) => ended.get(id)?.id)).toEqual(["p0", "p1"]);
    // a call of that id running again replaces the pinned one
    ended.put(call("p0", { position: at(10), kind: "unsettled" }));
    expect(ended.get("p0")?.kind).toBe("unsettled");
    ended.releaseCommitted({ topic: "t", partition: 0 }, 11n);
    expect(ended.get("p1")).toBeUndefined();
    // a revoked partition takes its pinned calls with it
    ended.put(call("q", { keyed: false, position: at(30, 1) }), 2_000, true);
    ended.dropPartitions(new Set(["t/1"]));
    expect(ended.get("q")).toBeUndefined();
  });

  it("lets un-keyed calls go once the commit point passed their records", () => {
    const { ended } = setup();
    ended.put(call("u1", { keyed: false, position: at(3) }));
    ended.put(call("u2", { keyed: false, position: at(7) }));
    ended.put(call("k", { keyed: true, position: at(1) }));
    ended.put(call("other", { keyed: false, position: at(1, 1) }));
    ended.releaseCommitted({ topic: "t", partition: 0 }, 4n);
    expect(ended.get("u1")).toBeUndefined();
    expect(ended.get("u2")?.id).toBe("u2");
    expect(ended.get("k")?.id).toBe("k");
    expect(ended.get("other")?.id).toBe("other");
    ended.releaseCommitted({ topic: "t", partition: 0 }, 8n);
    expect(ended.get("u2")).toBeUndefined();
  });

  it("drops every call of revoked partitions", () => {
    const { ended } = setup();
    ended.put(call("a", { position: at(1, 0) }));
    ended.put(call("b", { position: at(1, 1), requestEnded: false }));
    ended.dropPartitions(new Set(["t/1"]));
    expect(ended.get("a")?.id).toBe("a");
    expect(ended.get("b")).toBeUndefined();
    expect(ended.size).toBe(1);
  });

  it("tells records below a partition's restored lease, until the partition is revoked", () => {
    const { ended } = setup();
    const record = (partition: number, offset: bigint) => ({ topic: "t", partition, offset });
    expect(ended.underLease(record(0, 0n))).toBe(false);
    ended.setLease({ topic: "t", partition: 0 }, 40n);
    expect(ended.underLease(record(0, 39n))).toBe(true);
    expect(ended.underLease(record(0, 40n))).toBe(false);
    expect(ended.underLease(record(1, 0n))).toBe(false);
    ended.dropPartitions(new Set(["t/0"]));
    expect(ended.underLease(record(0, 39n))).toBe(false);
  });

  it("ends a tail after its grace, completing its spans", () => {
    const { ended, completed, advance, now } = setup();
    const tracker = createPartitionTracker();
    const tail: SpanRef[] = [{ tracker, span: tracker.open(4n) }];
    ended.put(call("t", { requestEnded: false, tail, finishedAt: now() }));
    advance(49);
    ended.sweep();
    expect(completed).toEqual([]);
    advance(1);
    ended.sweep();
    expect(completed).toEqual(tail);
    expect(ended.get("t")?.requestEnded).toBe(true);
  });

  it("ends a tail when its request ends", () => {
    const { ended, completed } = setup();
    const tracker = createPartitionTracker();
    const entry = call("t", { requestEnded: false, tail: [{ tracker, span: tracker.open(4n) }] });
    ended.put(entry);
    ended.endTail(entry);
    expect(completed).toHaveLength(1);
    expect(entry.requestEnded).toBe(true);
  });

  it("evicts the oldest past its bounds, completing their open spans and counting keyed ones", () => {
    const { ended, completed, now } = setup({ maxEntries: 2, maxBytes: 10 * entryBytes });
    const tracker = createPartitionTracker();
    const duplicate: SpanRef[] = [{ tracker, span: tracker.open(1n) }];
    ended.put(call("a", { duplicate, duplicateOpen: true, finishedAt: now() }));
    ended.put(call("b"));
    ended.put(call("c", { keyed: false }));
    expect(ended.get("a")).toBeUndefined();
    expect(completed).toEqual(duplicate);
    expect(ended.evictedEarly).toBe(1);
    // A kept reply counts for the byte bound.
    ended.put(call("d", { reply: [], replyBytes: 8 * entryBytes }));
    expect(ended.get("b")).toBeUndefined();
    expect(ended.get("c")?.id).toBe("c");
    expect(ended.bytes).toBe(10 * entryBytes);
  });

  it("keeps a restored call until the expiry it was given", () => {
    const { ended, advance, now } = setup();
    ended.put(call("r", { finishedAt: 0 }), now() + 10);
    expect(ended.get("r")?.id).toBe("r");
    advance(10);
    expect(ended.get("r")).toBeUndefined();
  });
});

describe("completeAfterSettled", () => {
  it("waits for the call's answer to be written, and for nothing if it was not", async () => {
    const tracker = createPartitionTracker();
    const spans: SpanRef[] = [{ tracker, span: tracker.open(0n) }];
    const done: SpanRef[][] = [];
    let settle: (written: boolean) => void = () => {};
    const entry = call("x", { settling: new Promise((r) => (settle = r)) });
    completeAfterSettled(entry, spans, (s) => done.push([...s]));
    expect(done).toEqual([]);
    settle(true);
    await entry.settling;
    expect(done).toEqual([spans]);

    const failed = call("y", { settling: Promise.resolve(false) });
    completeAfterSettled(failed, spans, (s) => done.push([...s]));
    await failed.settling;
    expect(done).toHaveLength(1);
    completeAfterSettled(call("z"), spans, (s) => done.push([...s]));
    expect(done).toHaveLength(2);
  });
});
