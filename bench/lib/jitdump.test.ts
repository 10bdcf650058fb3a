import { describe, expect, it } from "vitest";
import { codeNamer, parseJitDump } from "./jitdump.ts";

/** A dump as JSC writes it: 40-byte header, then code-load records (and others). */
function dump(pid: number, records: Uint8Array[]): Uint8Array {
  const header = new Uint8Array(40);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x4a695444, true);
  view.setUint32(4, 1, true);
  view.setUint32(8, 40, true);
  view.setUint32(20, pid, true);
  const out = new Uint8Array(40 + records.reduce((n, r) => n + r.byteLength, 0));
  out.set(header);
  let at = 40;
  for (const r of records) {
    out.set(r, at);
    at += r.byteLength;
  }
  return out;
}

function codeLoad(name: string, address: number, size: number, ns: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const record = new Uint8Array(56 + nameBytes.byteLength + size);
  const view = new DataView(record.buffer);
  view.setUint32(0, 0, true);
  view.setUint32(4, record.byteLength, true);
  view.setBigUint64(8, BigInt(ns), true);
  view.setBigUint64(24, BigInt(address), true); // vma
  view.setBigUint64(32, BigInt(address), true); // code address
  view.setBigUint64(40, BigInt(size), true);
  record.set(nameBytes, 56);
  return record;
}

function otherRecord(id: number): Uint8Array {
  const record = new Uint8Array(24);
  const view = new DataView(record.buffer);
  view.setUint32(0, id, true);
  view.setUint32(4, 24, true);
  return record;
}

describe("jitdump", () => {
  const bytes = dump(4242, [
    codeLoad("JSC-DFG: first", 0x1000, 0x100, 10),
    otherRecord(2),
    codeLoad("JSC-FTL: second", 0x1000, 0x80, 50),
    codeLoad("JSC-FTL: far", 0x9000, 0x10, 20),
  ]);

  it("reads the process and every code load, skipping other records", () => {
    const { pid, loads } = parseJitDump(bytes);
    expect(pid).toBe(4242);
    expect(loads.map((l) => [l.name, l.start, l.end, l.loadedNs])).toEqual([
      ["JSC-DFG: first", 0x1000, 0x1100, 10],
      ["JSC-FTL: second", 0x1000, 0x1080, 50],
      ["JSC-FTL: far", 0x9000, 0x9010, 20],
    ]);
  });

  it("names an address by the code that lay there at the sample's time", () => {
    const name = codeNamer(parseJitDump(bytes).loads);
    expect(name(0x1010, 20)).toBe("JSC-DFG: first");
    expect(name(0x1010, 60)).toBe("JSC-FTL: second");
    // Past the reused block's end only the first block covered it.
    expect(name(0x10f0, 60)).toBe("JSC-DFG: first");
    expect(name(0x1010, 5)).toBeUndefined();
    expect(name(0x9008, 30)).toBe("JSC-FTL: far");
    expect(name(0x5000, 100)).toBeUndefined();
  });

  it("stops at a record cut short and refuses a file that is not a dump", () => {
    const cut = bytes.subarray(0, bytes.byteLength - 10);
    expect(parseJitDump(cut).loads.map((l) => l.name)).toEqual([
      "JSC-DFG: first",
      "JSC-FTL: second",
    ]);
    expect(() => parseJitDump(new Uint8Array(64))).toThrow(/not a jitdump/);
  });
});
