/**
 * JSC's JIT dump files (`BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=DIR`, perf's jitdump
 * format: a header, then records; code-load records name a block of machine code) read into
 * code loads with their time, and a lookup that names an address at a sample's time: JSC frees
 * and reuses code memory, so one address names different functions over a run, and a plain
 * perf map (address → name, no time) mislabels many samples.
 */

/** One block of JIT code: where it lay, from when (CLOCK_MONOTONIC ns) and its name. */
export interface CodeLoad {
  start: number;
  end: number;
  loadedNs: number;
  name: string;
}

const magic = 0x4a695444; // "JiTD"
const codeLoadRecord = 0;

/** The process a dump belongs to and its code loads; throws on a file that is not a dump. */
export function parseJitDump(bytes: Uint8Array): { pid: number; loads: CodeLoad[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 40 || view.getUint32(0, true) !== magic) {
    throw new Error("not a jitdump file (magic JiTD, little-endian)");
  }
  const headerBytes = view.getUint32(8, true);
  const pid = view.getUint32(20, true);
  const loads: CodeLoad[] = [];
  const names = new TextDecoder();
  for (let at = headerBytes; at + 16 <= bytes.byteLength; ) {
    const id = view.getUint32(at, true);
    const size = view.getUint32(at + 4, true);
    // A record cut short (the process was killed while writing) ends the file.
    if (size < 16 || at + size > bytes.byteLength) break;
    if (id === codeLoadRecord && size >= 57) {
      const loadedNs = Number(view.getBigUint64(at + 8, true));
      const codeAddress = Number(view.getBigUint64(at + 32, true));
      const codeSize = Number(view.getBigUint64(at + 40, true));
      let nameEnd = at + 56;
      while (nameEnd < at + size && bytes[nameEnd] !== 0) nameEnd++;
      loads.push({
        start: codeAddress,
        end: codeAddress + codeSize,
        loadedNs,
        name: names.decode(bytes.subarray(at + 56, nameEnd)),
      });
    }
    at += size;
  }
  return { pid, loads };
}

/** Names addresses at a time: the latest load at or before it that covers the address. */
export function codeNamer(
  loads: readonly CodeLoad[],
): (address: number, atNs: number) => string | undefined {
  const sorted = [...loads].sort((a, b) => a.start - b.start);
  const widest = sorted.reduce((most, l) => Math.max(most, l.end - l.start), 0);
  return (address, atNs) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid] as CodeLoad).start <= address) lo = mid + 1;
      else hi = mid;
    }
    let best: CodeLoad | undefined;
    for (let i = lo - 1; i >= 0; i--) {
      const load = sorted[i] as CodeLoad;
      if (load.start <= address - widest) break;
      if (address < load.end && load.loadedNs <= atNs && (!best || load.loadedNs > best.loadedNs)) {
        best = load;
      }
    }
    return best?.name;
  };
}
