import { describe, expect, it } from "vitest";
import { crc32c, crc32cParts, crc32cUsesWebAssembly, WASM_MIN_BYTES } from "./crc32c.ts";

/** CRC-32C one bit at a time: slow, and plainly the definition. */
function reference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe("crc32c", () => {
  it("matches the standard check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  it("matches RFC 3720 test vectors", () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(crc32c(ascending)).toBe(0x46dd794e);
  });

  it("agrees with a bit-at-a-time reference at every length across the 16-byte steps", () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 17) & 0xff);
    for (let length = 0; length <= 70; length++) {
      expect(crc32c(data, 3, 3 + length)).toBe(reference(data.subarray(3, 3 + length)));
    }
    expect(crc32c(data)).toBe(reference(data));
  });

  it("computes a sub-range the same as a copy of it, for every alignment", () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 31 + 7) & 0xff);
    for (let start = 0; start < 20; start++) {
      for (const end of [start, start + 1, start + 7, start + 8, start + 9, 300]) {
        expect(crc32c(data, start, end)).toBe(crc32c(data.slice(start, end)));
      }
    }
  });

  it("computes bytes split across arrays the same as the bytes joined, wherever they split", () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 53 + 11) & 0xff);
    const whole = crc32c(data);
    for (const cuts of [[], [0], [1], [15, 16], [17, 100, 283], [299], [150, 150]]) {
      const parts: Uint8Array[] = [];
      let from = 0;
      for (const cut of [...cuts, data.length]) {
        parts.push(data.subarray(from, cut));
        from = cut;
      }
      expect(crc32cParts(parts)).toBe(whole);
    }
    expect(crc32cParts([])).toBe(crc32c(new Uint8Array(0)));
  });

  it("sums long runs in WebAssembly, the same as the reference, across its 64 KiB chunks", () => {
    // Every runtime the gateway supports has WebAssembly: a module that failed to build
    // would leave everything to the slower JavaScript loop without a word.
    expect(crc32cUsesWebAssembly).toBe(true);
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 167 + (i >>> 9)) & 0xff);
    const chunk = 64 * 1024;
    for (const [start, length] of [
      [0, WASM_MIN_BYTES - 1],
      [0, WASM_MIN_BYTES],
      [1, WASM_MIN_BYTES + 1],
      [3, 10_240 + 13],
      [5, chunk - 1],
      [6, chunk],
      [7, chunk + 1],
      [9, 2 * chunk + 17],
      [0, 200_000],
    ] as const) {
      const end = start + length;
      expect(crc32c(data, start, end), `${length} bytes from ${start}`).toBe(
        reference(data.subarray(start, end)),
      );
    }
    expect(crc32c(new Uint8Array(WASM_MIN_BYTES))).toBe(reference(new Uint8Array(WASM_MIN_BYTES)));
    expect(crc32c(new Uint8Array(WASM_MIN_BYTES).fill(0xff))).toBe(
      reference(new Uint8Array(WASM_MIN_BYTES).fill(0xff)),
    );
  });

  it("sums short and long parts in any order the same as the bytes joined", () => {
    const data = Uint8Array.from({ length: 30_000 }, (_, i) => (i * 29 + 3) & 0xff);
    const whole = reference(data);
    for (const cuts of [
      [10],
      [10, 10_250],
      [5_000, 5_001, 29_999],
      [WASM_MIN_BYTES, 2 * WASM_MIN_BYTES],
    ]) {
      const parts: Uint8Array[] = [];
      let from = 0;
      for (const cut of [...cuts, data.length]) {
        parts.push(data.subarray(from, cut));
        from = cut;
      }
      expect(crc32cParts(parts), cuts.join(",")).toBe(whole);
    }
  });
});
