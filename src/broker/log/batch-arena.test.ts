/**
 * The log's reused batch memory: what is copied and what is kept, chunks sized to their
 * batches, a chunk reused only after all of its batches are gone, a macrotask has passed and
 * no response being written refers to it, and the bytes read back always the ones written.
 */
import { setImmediate } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  batchBaseOffset,
  encodeRecordBatch,
  parseBatchHeader,
} from "../../kafka/protocol/record-batch.ts";
import { ARENA_MAX_BATCH_BYTES, BatchArena } from "./batch-arena.ts";
import { PartitionLog, type RetentionLimits } from "./partition-log.ts";

/** A batch of one record of `size` bytes, every byte `fill`. */
function batchOf(size: number, fill: number): Uint8Array {
  return encodeRecordBatch([{ value: new Uint8Array(size).fill(fill) }]);
}

function append(log: PartitionLog, batch: Uint8Array): number {
  const result = log.append(batch, parseBatchHeader(batch, 0));
  expect(result.errorCode).toBe(0);
  return result.baseOffset;
}

/** Every batch the log holds, from its start. */
function readAll(log: PartitionLog): Uint8Array[] {
  return log.read(log.logStartOffset, Number.POSITIVE_INFINITY, true).batches;
}

/** The stored batch equals `sent` but for the base offset, and its CRC checks. */
function expectStored(stored: Uint8Array | undefined, sent: Uint8Array, offset: number) {
  expect(stored).toBeDefined();
  const batch = stored as Uint8Array;
  expect(batchBaseOffset(batch)).toBe(offset);
  expect(() => parseBatchHeader(batch, 0)).not.toThrow();
  expect(batch.subarray(8)).toEqual(sent.subarray(8));
}

function newLog(arena: BatchArena, limits: RetentionLimits = {}, topic = "t"): PartitionLog {
  return new PartitionLog(topic, 0, limits, Date.now, { compact: false }, arena);
}

describe("BatchArena through PartitionLog", () => {
  it("copies a batch into its memory, leaving the caller's untouched; keeps a large one", () => {
    const log = newLog(new BatchArena());
    const small = batchOf(100, 1);
    const before = small.slice();
    append(log, batchOf(10, 9));
    append(log, small);
    const large = batchOf(ARENA_MAX_BATCH_BYTES, 2);
    append(log, large);
    const [first, copied, kept] = readAll(log);
    expect(copied?.buffer).toBe(first?.buffer); // both in the partition's first chunk
    expect(copied?.buffer).not.toBe(small.buffer);
    expect(small).toEqual(before); // the base offset went into the copy
    expectStored(copied, small, 1);
    expect(kept).toBe(large); // handed over, not copied
    expect(batchBaseOffset(large)).toBe(2);
  });

  it("sizes a chunk to hold a batch larger than the partition's next chunk", () => {
    const log = newLog(new BatchArena());
    const sent = [100, 20_000, 50, 100_000, ARENA_MAX_BATCH_BYTES - 200, 10].map((n, i) =>
      batchOf(n, i + 1),
    );
    for (const batch of sent) append(log, batch);
    const stored = readAll(log);
    expect(stored).toHaveLength(sent.length);
    sent.forEach((batch, i) => {
      expectStored(stored[i], batch, i);
    });
  });

  it("reuses a freed chunk for another partition once a macrotask has passed", async () => {
    const arena = new BatchArena();
    const a = newLog(arena, { retentionBytes: 1 });
    append(a, batchOf(10_000, 1)); // a's first chunk (16 KiB)
    const firstChunk = readAll(a)[0]?.buffer;
    append(a, batchOf(10_000, 2)); // does not fit: a second chunk; retention drops the first batch
    expect(readAll(a)[0]?.buffer).not.toBe(firstChunk);
    // Freed, but not reusable before the macrotask is over (a Fetch answer read earlier in
    // it may not have been handed to its connection yet).
    const b = newLog(arena, {}, "b");
    append(b, batchOf(100, 3));
    expect(readAll(b)[0]?.buffer).not.toBe(firstChunk);
    await setImmediate();
    expect(arena.freeBytes).toBe(16 * 1024);
    const c = newLog(arena, {}, "c");
    const sent = batchOf(10_000, 4);
    append(c, sent);
    const [stored] = readAll(c);
    expect(stored?.buffer).toBe(firstChunk);
    expectStored(stored, sent, 0);
    expect(arena.freeBytes).toBe(0);
  });

  it("does not reuse a chunk while a response being written refers to it", async () => {
    const arena = new BatchArena();
    const a = newLog(arena, { retentionBytes: 1 });
    const sent = batchOf(10_000, 1);
    append(a, sent);
    const answer = readAll(a);
    const pinned = arena.pinSegments([new Uint8Array(5), ...answer]);
    expect(pinned).toHaveLength(1);
    append(a, batchOf(10_000, 2)); // the first batch goes
    await setImmediate();
    expect(arena.freeBytes).toBe(0);
    const b = newLog(arena, {}, "b");
    append(b, batchOf(10_000, 0xee));
    expect(readAll(b)[0]?.buffer).not.toBe(answer[0]?.buffer);
    expectStored(answer[0], sent, 0); // what the response sends is intact
    arena.unpin(pinned ?? []);
    await setImmediate();
    expect(arena.freeBytes).toBe(16 * 1024);
  });

  it("holds back a chunk pinned after it was freed, within the same macrotask", async () => {
    const arena = new BatchArena();
    const a = newLog(arena, { retentionBytes: 1 });
    const sent = batchOf(10_000, 1);
    append(a, sent);
    const answer = readAll(a); // read first...
    append(a, batchOf(10_000, 2)); // ...the batch goes and its chunk is freed...
    const pinned = arena.pinSegments(answer); // ...then the answer is handed to its socket
    await setImmediate();
    expect(arena.freeBytes).toBe(0);
    expectStored(answer[0], sent, 0);
    arena.unpin(pinned ?? []);
    expect(arena.freeBytes).toBe(0); // not before the macrotask is over
    await setImmediate();
    expect(arena.freeBytes).toBe(16 * 1024);
  });

  it("frees chunks that compaction emptied", async () => {
    const arena = new BatchArena();
    const log = new PartitionLog("k", 0, {}, Date.now, { compact: true }, arena);
    const keyed = (key: string, fill: number) =>
      encodeRecordBatch([
        { key: new TextEncoder().encode(key), value: new Uint8Array(6_000).fill(fill) },
      ]);
    append(log, keyed("x", 1)); // first chunk (16 KiB)
    append(log, keyed("x", 2)); // same chunk
    const last = keyed("x", 3);
    append(log, last); // second chunk (32 KiB)
    log.compact(); // only the last record of x stays: the first chunk is empty
    await setImmediate();
    expect(arena.freeBytes).toBe(16 * 1024);
    const [kept] = readAll(log);
    expectStored(kept, last, 2);
  });

  it("packs the few survivors of thinned-out chunks together, freeing those chunks", async () => {
    const arena = new BatchArena();
    const log = new PartitionLog("k", 0, {}, Date.now, { compact: true }, arena);
    const keyed = (key: string, size: number) =>
      encodeRecordBatch([{ key: new TextEncoder().encode(key), value: new Uint8Array(size) }]);
    // Each once-written key sits between hot-key batches that compaction removes (60
    // appends: fewer than would start a compaction on their own).
    const once: Uint8Array[] = [];
    for (let i = 0; i < 30; i++) {
      const batch = keyed(`k${i}`, 100);
      once.push(batch);
      append(log, batch);
      append(log, keyed("hot", 20_000));
    }
    const chunksBefore = new Set(readAll(log).map((b) => b.buffer)).size;
    log.compact();
    const stored = readAll(log);
    expect(stored).toHaveLength(31);
    const chunksAfter = new Set(stored.map((b) => b.buffer)).size;
    expect(chunksBefore).toBeGreaterThanOrEqual(6);
    expect(chunksAfter).toBeLessThanOrEqual(2);
    once.forEach((batch, i) => {
      expectStored(stored[i], batch, 2 * i);
    });
    await setImmediate();
    expect(arena.freeBytes).toBe((16 + 32 + 64 + 128 + 256) * 1024); // all but the last two
  });

  it("keeps no more free memory than is in use, beyond a floor", async () => {
    const arena = new BatchArena();
    const logs = Array.from({ length: 40 }, (_, i) =>
      newLog(arena, { retentionBytes: 1 }, `t${i}`),
    );
    // Each log fills ever larger chunks up to 1 MiB; retention empties all but its last.
    for (const log of logs) {
      for (let i = 0; i < 12; i++) append(log, batchOf(200_000, i));
    }
    await setImmediate();
    expect(arena.freeBytes).toBeGreaterThan(0);
    expect(arena.freeBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
  });
});
