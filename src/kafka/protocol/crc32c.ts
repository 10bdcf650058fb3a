/**
 * CRC-32C (Castagnoli), the checksum of Kafka record batches. Slice-by-16 tables: every
 * batch is checksummed when written and checked when read, so this sits on the hot path
 * (16 bytes a step ran 1.4× faster than 8 a step on 10 KiB batches under Bun).
 */

const POLY = 0x82f63b78;

const TABLES: Uint32Array[] = (() => {
  const tables: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  tables.push(t0);
  for (let t = 1; t < 16; t++) {
    const prev = tables[t - 1] as Uint32Array;
    const next = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      const p = prev[i] as number;
      next[i] = ((p >>> 8) ^ (t0[p & 0xff] as number)) >>> 0;
    }
    tables.push(next);
  }
  return tables;
})();

type Table = Uint32Array;
type EightTables = [Table, Table, Table, Table, Table, Table, Table, Table];
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15] = TABLES as [
  ...EightTables,
  ...EightTables,
];

/** CRC-32C of `buf[start..end)`, as an unsigned 32-bit number. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  return (crc32cUpdate(0xffffffff, buf, start, end) ^ 0xffffffff) >>> 0;
}

/**
 * CRC-32C of bytes held in several arrays, in order (a batch whose large values are
 * referenced rather than copied into it).
 */
export function crc32cParts(parts: readonly Uint8Array[]): number {
  let crc = 0xffffffff;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p] as Uint8Array;
    crc = crc32cUpdate(crc, part, 0, part.length);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The running (not yet inverted) CRC after `buf[start..end)`. */
function crc32cUpdate(crc: number, buf: Uint8Array, start: number, end: number): number {
  let i = start;
  // In-range typed-array reads are always numbers; the casts only satisfy the index checks.
  for (; i + 16 <= end; i += 16) {
    const lo =
      crc ^
      ((buf[i] as number) |
        ((buf[i + 1] as number) << 8) |
        ((buf[i + 2] as number) << 16) |
        ((buf[i + 3] as number) << 24));
    crc =
      (T15[lo & 0xff] as number) ^
      (T14[(lo >>> 8) & 0xff] as number) ^
      (T13[(lo >>> 16) & 0xff] as number) ^
      (T12[lo >>> 24] as number) ^
      (T11[buf[i + 4] as number] as number) ^
      (T10[buf[i + 5] as number] as number) ^
      (T9[buf[i + 6] as number] as number) ^
      (T8[buf[i + 7] as number] as number) ^
      (T7[buf[i + 8] as number] as number) ^
      (T6[buf[i + 9] as number] as number) ^
      (T5[buf[i + 10] as number] as number) ^
      (T4[buf[i + 11] as number] as number) ^
      (T3[buf[i + 12] as number] as number) ^
      (T2[buf[i + 13] as number] as number) ^
      (T1[buf[i + 14] as number] as number) ^
      (T0[buf[i + 15] as number] as number);
  }
  for (; i < end; i++) crc = (T0[(crc ^ (buf[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return crc;
}
