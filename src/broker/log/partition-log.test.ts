import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  batchBaseOffset,
  encodeRecordBatch,
  parseBatchHeader,
  type RecordInput,
} from "../../kafka/protocol/record-batch.ts";
import { PartitionLog, type RetentionLimits } from "./partition-log.ts";

const value = (s: string): Uint8Array => new TextEncoder().encode(s);

function appendRecords(log: PartitionLog, records: RecordInput[]) {
  const batch = encodeRecordBatch(records);
  return log.append(batch, parseBatchHeader(batch, 0));
}

function appendN(log: PartitionLog, count: number, timestamp?: number) {
  const records = Array.from({ length: count }, (_, i) => ({ value: value(`r${i}`), timestamp }));
  return appendRecords(log, records);
}

function clockLog(limits: RetentionLimits = {}) {
  const clock = { now: 1_000_000 };
  const log = new PartitionLog("t", 0, limits, () => clock.now);
  return { log, clock };
}

describe("PartitionLog append", () => {
  it("assigns consecutive offsets batch by batch and rewrites base offsets", () => {
    const { log } = clockLog();
    expect(appendN(log, 3)).toEqual({ errorCode: 0, baseOffset: 0 });
    expect(appendN(log, 1)).toEqual({ errorCode: 0, baseOffset: 3 });
    expect(appendN(log, 2)).toEqual({ errorCode: 0, baseOffset: 4 });
    expect(log.highWatermark).toBe(6);
    expect(log.logStartOffset).toBe(0);
    expect(log.batchCount).toBe(3);
    const read = log.read(0, Number.MAX_SAFE_INTEGER, true);
    expect(read.batches.map(batchBaseOffset)).toEqual([0, 3, 4]);
    expect(log.sizeBytes).toBe(read.sizeBytes);
  });

  it("appends an idempotent retry once and answers it with the original offset", () => {
    const { log } = clockLog();
    const producer = { producerId: 9, producerEpoch: 0, baseSequence: 0 };
    const first = encodeRecordBatch([{ value: value("a") }, { value: value("b") }], producer);
    const retry = first.slice();
    appendN(log, 1);
    expect(log.append(first, parseBatchHeader(first, 0))).toEqual({ errorCode: 0, baseOffset: 1 });
    expect(log.append(retry, parseBatchHeader(retry, 0))).toEqual({ errorCode: 0, baseOffset: 1 });
    expect(log.highWatermark).toBe(3);
    const gap = encodeRecordBatch([{ value: value("c") }], { ...producer, baseSequence: 5 });
    expect(log.append(gap, parseBatchHeader(gap, 0)).errorCode).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    expect(log.highWatermark).toBe(3);
  });
});

describe("PartitionLog read", () => {
  it("starts with the whole batch that holds the offset", () => {
    const { log } = clockLog();
    appendN(log, 5); // 0-4
    appendN(log, 5); // 5-9
    appendN(log, 5); // 10-14
    for (const [offset, base] of [
      [0, 0],
      [4, 0],
      [5, 5],
      [7, 5],
      [14, 10],
    ] as const) {
      const read = log.read(offset, Number.MAX_SAFE_INTEGER, true);
      expect(batchBaseOffset(read.batches[0] as Uint8Array)).toBe(base);
    }
    expect(log.read(15, 1000, true).batches).toEqual([]);
    expect(log.read(-1, 1000, true).batches).toEqual([]);
  });

  it("returns whole batches that fit, and one oversized first batch only when asked", () => {
    const { log } = clockLog();
    appendN(log, 1);
    appendN(log, 1);
    appendN(log, 1);
    const size = log.sizeBytes / 3;
    expect(log.read(0, size * 2 + 1, false).batches).toHaveLength(2);
    expect(log.read(0, size - 1, false).batches).toHaveLength(0);
    const forced = log.read(0, 1, true);
    expect(forced.batches).toHaveLength(1);
    expect(forced.sizeBytes).toBe(size);
    expect(log.bytesFrom(1)).toBe(size * 2);
  });
});

describe("PartitionLog time index", () => {
  it("finds the first batch whose max timestamp reaches the target", () => {
    const { log } = clockLog();
    appendN(log, 2, 100); // 0-1
    appendN(log, 2, 200); // 2-3
    appendN(log, 2, 150); // 4-5: out of order, does not lower the index
    appendN(log, 2, 300); // 6-7
    expect(log.offsetForTimestamp(0)).toEqual({ offset: 0, timestamp: 100 });
    expect(log.offsetForTimestamp(100)).toEqual({ offset: 0, timestamp: 100 });
    expect(log.offsetForTimestamp(101)).toEqual({ offset: 2, timestamp: 200 });
    expect(log.offsetForTimestamp(201)).toEqual({ offset: 6, timestamp: 300 });
    expect(log.offsetForTimestamp(301)).toBeNull();
  });
});

describe("PartitionLog retention", () => {
  it("drops whole batches from the head by size, keeping the newest", () => {
    const { log } = clockLog({ retentionBytes: 1 });
    appendN(log, 2);
    appendN(log, 3);
    expect(log.batchCount).toBe(1);
    expect(log.logStartOffset).toBe(2);
    expect(log.highWatermark).toBe(5);
    expect(log.read(1, 1000, true).batches).toEqual([]);
    expect(batchBaseOffset(log.read(2, 1000, true).batches[0] as Uint8Array)).toBe(2);
  });

  it("keeps the size under the limit over many appends", () => {
    const { log } = clockLog({ retentionBytes: 10_000 });
    for (let i = 0; i < 3000; i++) appendN(log, 1);
    expect(log.sizeBytes).toBeLessThanOrEqual(10_000);
    expect(log.highWatermark).toBe(3000);
    const read = log.read(log.logStartOffset, Number.MAX_SAFE_INTEGER, true);
    expect(read.sizeBytes).toBe(log.sizeBytes);
    expect(batchBaseOffset(read.batches.at(-1) as Uint8Array)).toBe(2999);
  });

  it("drops batches older than the age limit by append time", () => {
    const { log, clock } = clockLog({ retentionMs: 1000 });
    appendN(log, 1, 0); // ancient client timestamp: append time is what counts
    clock.now += 600;
    appendN(log, 1);
    clock.now += 600;
    log.enforceRetention();
    expect(log.logStartOffset).toBe(1);
    clock.now += 600;
    log.enforceRetention();
    expect(log.batchCount).toBe(0);
    expect(log.logStartOffset).toBe(2);
    expect(log.sizeBytes).toBe(0);
    expect(appendN(log, 1).baseOffset).toBe(2);
  });
});

describe("PartitionLog waiters", () => {
  it("wakes waiters after an append, once per microtask, until removed", async () => {
    const { log } = clockLog();
    let wakes = 0;
    const waiter = () => {
      wakes++;
    };
    log.addWaiter(waiter);
    appendN(log, 1);
    appendN(log, 1);
    expect(wakes).toBe(0);
    await Promise.resolve();
    expect(wakes).toBe(1);
    log.removeWaiter(waiter);
    appendN(log, 1);
    await Promise.resolve();
    expect(wakes).toBe(1);
  });

  it("wakes waiters when the log is closed", async () => {
    const { log } = clockLog();
    let woke = false;
    log.addWaiter(() => {
      woke = true;
    });
    log.close();
    await Promise.resolve();
    expect(woke).toBe(true);
    expect(log.closed).toBe(true);
  });
});

describe("PartitionLog time index within a batch", () => {
  it("answers the first record at or after the target, not the batch's first", () => {
    const { log } = clockLog();
    appendRecords(log, [
      { value: value("a"), timestamp: 100 },
      { value: value("b"), timestamp: 200 },
      { value: value("c"), timestamp: 300 },
    ]);
    expect(log.offsetForTimestamp(150)).toEqual({ offset: 1, timestamp: 200 });
    expect(log.offsetForTimestamp(300)).toEqual({ offset: 2, timestamp: 300 });
  });
});

describe("PartitionLog compaction", () => {
  const keyed = (key: string, v: string, timestamp = 1_000): RecordInput => ({
    key: value(key),
    value: value(v),
    timestamp,
  });

  function compactedLog() {
    const clock = { now: 1_000_000 };
    const log = new PartitionLog("t", 0, {}, () => clock.now, { compact: true });
    return log;
  }

  it("reads on past the gaps compaction leaves, with offsets and the high watermark unchanged", () => {
    const log = compactedLog();
    appendRecords(log, [keyed("a", "1"), keyed("b", "1")]); // 0-1
    appendRecords(log, [keyed("a", "2")]); // 2
    appendRecords(log, [keyed("b", "2"), keyed("c", "1")]); // 3-4
    log.compact();
    expect(log.highWatermark).toBe(5);
    expect(log.logStartOffset).toBe(0);
    // Offset 0 and 1 are gone: a read from 0 starts with the batch that holds 2.
    const read = log.read(0, Number.MAX_SAFE_INTEGER, true);
    expect(read.batches.map(batchBaseOffset)).toEqual([2, 3]);
    expect(log.sizeBytes).toBe(read.sizeBytes);
    expect(log.bytesFrom(1)).toBe(read.sizeBytes);
    expect(log.read(5, 1_000, true).batches).toEqual([]);
  });

  it("compacts on its own once as many batches came in as it kept, at least 64", () => {
    const log = compactedLog();
    for (let i = 0; i < 63; i++) appendRecords(log, [keyed("k", `v${i}`)]);
    expect(log.batchCount).toBe(63);
    appendRecords(log, [keyed("k", "v63")]);
    expect(log.batchCount).toBe(1);
    expect(log.highWatermark).toBe(64);
    expect(log.offsetForTimestamp(0)).toEqual({ offset: 63, timestamp: 1_000 });
  });

  it("leaves a topic without the compact policy alone", () => {
    const { log } = clockLog();
    for (let i = 0; i < 70; i++) appendRecords(log, [keyed("k", `v${i}`)]);
    expect(log.batchCount).toBe(70);
  });
});
