import { describe, expect, it } from "vitest";
import { crc32c } from "./crc32c.ts";

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

  it("computes a sub-range the same as a copy of it, for every alignment", () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 31 + 7) & 0xff);
    for (let start = 0; start < 20; start++) {
      for (const end of [start, start + 1, start + 7, start + 8, start + 9, 300]) {
        expect(crc32c(data, start, end)).toBe(crc32c(data.slice(start, end)));
      }
    }
  });
});
