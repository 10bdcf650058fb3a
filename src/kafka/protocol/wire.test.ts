import { describe, expect, it } from "vitest";
import { Reader, WireError, Writer } from "./wire.ts";

describe("Writer", () => {
  it("keeps every value when the buffer grows mid-write", () => {
    const w = new Writer(1);
    const big = new Uint8Array(1000).fill(9);
    w.int8(1).int16(2).int32(3).int64(4n).uvarint(300).varint(-5).varlong(-6).raw(big).string("s");
    const r = new Reader(w.bytesView());
    expect([
      r.int8(),
      r.int16(),
      r.int32(),
      r.int64(),
      r.uvarint(),
      r.varint(),
      r.varlong(),
    ]).toEqual([1, 2, 3, 4n, 300, -5, -6]);
    expect(r.raw(1000)).toEqual(big);
    expect(r.string()).toBe("s");
    expect(r.remaining).toBe(0);
  });

  it("appends large arrays by reference and small ones by copy", () => {
    const w = new Writer(16);
    const large = new Uint8Array(4096).fill(1);
    const small = new Uint8Array(8).fill(2);
    const sizeAt = w.reserveInt32();
    w.int16(7).rawRef(large).int16(8).rawRef(small).rawRef(large);
    w.patchInt32(sizeAt, w.length - 4);
    const segments = w.segments();
    expect(segments.filter((s) => s === large)).toHaveLength(2);
    expect(w.length).toBe(4 + 2 + 4096 + 2 + 8 + 4096);
    const joined = w.bytesView();
    expect(joined.length).toBe(w.length);
    const r = new Reader(joined);
    expect(r.int32()).toBe(w.length - 4);
    expect(r.int16()).toBe(7);
    expect(r.raw(4096)).toEqual(large);
    expect(r.int16()).toBe(8);
    expect(r.raw(8)).toEqual(small);
    expect(r.raw(4096)).toEqual(large);
  });

  it("appends another writer's own bytes, short or long, into a buffer that grows", () => {
    for (const n of [0, 1, 63, 64, 65, 300]) {
      const part = new Writer(4);
      for (let i = 0; i < n; i++) part.int8((i * 37 + 5) % 128);
      // Written by reference into `part`: not among its own bytes, so not appended.
      part.rawRef(new Uint8Array(2048));
      const w = new Writer(2);
      w.int8(-1).rawFrom(part).int8(-2);
      const bytes = w.bytesView();
      expect(bytes.length).toBe(n + 2);
      expect([...bytes.subarray(1, n + 1)]).toEqual(
        Array.from({ length: n }, (_, i) => (i * 37 + 5) % 128),
      );
      expect([bytes[0], bytes[n + 1]]).toEqual([255, 254]);
    }
  });

  it("writes strings as UTF-8 with their byte length, ASCII or not, short or long", () => {
    const texts = [
      "topic-1",
      "",
      "caf\u00e9",
      "\u{1F600}x",
      "a".repeat(1023),
      "b".repeat(1024),
      `${"c".repeat(1022)}\u00e9`,
    ];
    const w = new Writer(4);
    for (const t of texts) w.string(t).compactString(t).int8(7);
    const r = new Reader(w.bytesView());
    for (const t of texts) {
      const bytes = new TextEncoder().encode(t).length;
      const at = r.offset;
      expect(r.string()).toBe(t);
      expect(r.offset - at).toBe(2 + bytes);
      expect(r.compactString()).toBe(t);
      expect(r.int8()).toBe(7);
    }
    expect(r.remaining).toBe(0);
  });

  it("is written into again after reset, growing only when asked for more", () => {
    const w = new Writer(64);
    w.int32(1).rawRef(new Uint8Array(1024).fill(3)).int32(2);
    w.reset(32);
    expect(w.capacity).toBe(64);
    expect(w.length).toBe(0);
    w.int16(5).string("again");
    expect(w.segments()).toHaveLength(1);
    const r = new Reader(w.bytesView());
    expect([r.int16(), r.string(), r.remaining]).toEqual([5, "again", 0]);
    w.reset(4096);
    expect(w.capacity).toBe(4096);
    expect(w.int8(1).bytesView()).toEqual(new Uint8Array([1]));
  });
});

describe("Reader", () => {
  it("throws WireError on truncation and on impossible array counts", () => {
    expect(() => new Reader(new Uint8Array(3)).int32()).toThrow(WireError);
    const w = new Writer().int32(1000);
    expect(() => new Reader(w.bytesView()).array((r) => r.int8())).toThrow(WireError);
  });
});
