import { describe, expect, it } from "vitest";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "./echo-payload.ts";

describe("echoTextOfSize", () => {
  it("gives requests of exactly the asked size on both sides of a varint length step", () => {
    for (const size of [3, 100, 129, 131, 10 * 1024, 20_000]) {
      expect(echoRequestBytes(echoTextOfSize(size)).byteLength).toBe(size);
    }
  });

  it("stays under a size no text can hit (127 chars take 129 bytes, 128 take 131)", () => {
    expect(echoRequestBytes(echoTextOfSize(130)).byteLength).toBe(129);
  });

  it("keeps a hook prefix at the start", () => {
    const text = echoTextOfSize(100, "delay:20000:");
    expect(text.startsWith("delay:20000:x")).toBe(true);
    expect(echoRequestBytes(text).byteLength).toBe(100);
  });
});

describe("grpcFrame", () => {
  it("prefixes an uncompressed flag and the big-endian length", () => {
    const frame = grpcFrame(new Uint8Array([7, 8, 9]));
    expect([...frame]).toEqual([0, 0, 0, 0, 3, 7, 8, 9]);
  });
});
