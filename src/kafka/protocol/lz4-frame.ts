/**
 * The LZ4 frame format (what Kafka's lz4 codec carries), read and written here from the
 * format's specification: the pure-JS packages on npm either skip checksums and bounds
 * (lz4js), speak only the block format (lz4-wasm) or need a native build (lz4, lz4-napi).
 *
 * Read: independent and linked blocks, block and content checksums (xxHash32, verified),
 * the optional content size (checked against the output), skippable frames, several frames
 * in a row; dictionaries are refused. Output never grows past the caller's `maxBytes`.
 * Written: one frame of independent 64 KiB blocks without checksums or content size, as
 * Kafka's Java producer writes them.
 */

/** Why LZ4 data could not be read. */
export class Lz4FormatError extends Error {
  override name = "Lz4FormatError";
}

/** The data would decompress past the caller's bound. */
export class Lz4LimitError extends Lz4FormatError {
  override name = "Lz4LimitError";
}

const FRAME_MAGIC = 0x184d2204;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const blockMaxSizes: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };
const UNCOMPRESSED_BLOCK = 0x80000000;
const MIN_MATCH = 4;
// The last 5 bytes of a block are always literals, and a match starts at least 12 bytes
// before its end (the block format's end-of-block rules).
const LAST_LITERALS = 5;
const MF_LIMIT = 12;

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function read32(b: Uint8Array, i: number): number {
  return (
    ((b[i] as number) |
      ((b[i + 1] as number) << 8) |
      ((b[i + 2] as number) << 16) |
      ((b[i + 3] as number) << 24)) >>>
    0
  );
}

function round(acc: number, input: number): number {
  return Math.imul(rotl((acc + Math.imul(input, P2)) | 0, 13), P1);
}

/** xxHash32 of `b[start..end)` with seed 0 (the frame format's checksum). */
export function xxh32(b: Uint8Array, start = 0, end = b.length): number {
  let i = start;
  let h: number;
  if (end - start >= 16) {
    let v1 = (P1 + P2) | 0;
    let v2 = P2 | 0;
    let v3 = 0;
    let v4 = -P1 | 0;
    for (const limit = end - 16; i <= limit; i += 16) {
      v1 = round(v1, read32(b, i));
      v2 = round(v2, read32(b, i + 4));
      v3 = round(v3, read32(b, i + 8));
      v4 = round(v4, read32(b, i + 12));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = P5 | 0;
  }
  h = (h + (end - start)) | 0;
  for (; i + 4 <= end; i += 4) {
    h = Math.imul(rotl((h + Math.imul(read32(b, i), P3)) | 0, 17), P4);
  }
  for (; i < end; i++) h = Math.imul(rotl((h + Math.imul(b[i] as number, P5)) | 0, 11), P1);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A growable output that refuses to pass `maxBytes`. */
class Output {
  bytes: Uint8Array;
  length = 0;
  readonly maxBytes: number;

  constructor(initial: number, maxBytes: number) {
    this.maxBytes = maxBytes;
    this.bytes = new Uint8Array(Math.min(Math.max(initial, 64), maxBytes));
  }

  /** Makes room for `n` more bytes, or throws when that would pass the bound. */
  room(n: number): void {
    if (this.length + n > this.maxBytes) {
      throw new Lz4LimitError(`decompressed data exceeds the ${this.maxBytes}-byte limit`);
    }
    this.reserve(n);
  }

  /** Grows the buffer to hold `n` more bytes (never past the bound; no check). */
  reserve(n: number): void {
    const need = Math.min(this.length + n, this.maxBytes);
    if (need <= this.bytes.length) return;
    const grown = new Uint8Array(Math.min(this.maxBytes, Math.max(need, this.bytes.length * 2)));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}

/**
 * Decompresses LZ4 frames; throws Lz4FormatError on anything malformed, on a checksum that
 * does not match, or once the output would pass `maxBytes`.
 */
export function decompressLz4Frames(input: Uint8Array, maxBytes: number): Uint8Array {
  const out = new Output(input.length * 4, maxBytes);
  let at = 0;
  while (at < input.length) {
    if (input.length - at < 4) throw new Lz4FormatError("truncated frame magic");
    const magic = read32(input, at);
    if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
      if (input.length - at < 8) throw new Lz4FormatError("truncated skippable frame");
      at += 8 + read32(input, at + 4);
      if (at > input.length) throw new Lz4FormatError("truncated skippable frame");
      continue;
    }
    if (magic !== FRAME_MAGIC) {
      throw new Lz4FormatError(`not an LZ4 frame (magic 0x${magic.toString(16)})`);
    }
    at = readFrame(input, at + 4, out);
  }
  return out.bytes.subarray(0, out.length);
}

/** Reads one frame whose descriptor starts at `at`; returns where the next frame starts. */
function readFrame(input: Uint8Array, at: number, out: Output): number {
  const need = (n: number, what: string) => {
    if (input.length - at < n) throw new Lz4FormatError(`truncated ${what}`);
  };
  need(3, "frame descriptor");
  const descriptorStart = at;
  const flg = input[at++] as number;
  const bd = input[at++] as number;
  if (flg >> 6 !== 1) throw new Lz4FormatError(`unsupported frame version ${flg >> 6}`);
  if ((flg & 0x02) !== 0 || (bd & 0x8f) !== 0) {
    throw new Lz4FormatError("reserved bits set in the frame descriptor");
  }
  const independent = (flg & 0x20) !== 0;
  const blockChecksums = (flg & 0x10) !== 0;
  const hasContentSize = (flg & 0x08) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  if ((flg & 0x01) !== 0) throw new Lz4FormatError("frames that need a dictionary are not read");
  const blockMax = blockMaxSizes[(bd >> 4) & 0x07];
  if (blockMax === undefined) throw new Lz4FormatError(`invalid block size code ${bd >> 4}`);
  let contentSize = -1;
  if (hasContentSize) {
    need(9, "frame descriptor");
    const low = read32(input, at);
    const high = read32(input, at + 4);
    contentSize = high * 2 ** 32 + low;
    at += 8;
  }
  need(1, "frame descriptor");
  const headerChecksum = (xxh32(input, descriptorStart, at) >>> 8) & 0xff;
  if (input[at++] !== headerChecksum)
    throw new Lz4FormatError("frame descriptor checksum mismatch");
  if (contentSize >= 0) out.room(contentSize);
  const frameStart = out.length;
  for (;;) {
    need(4, "block size");
    const word = read32(input, at);
    at += 4;
    if (word === 0) break;
    const size = (word & ~UNCOMPRESSED_BLOCK) >>> 0;
    if (size > blockMax) throw new Lz4FormatError(`block of ${size} bytes over its ${blockMax}`);
    need(size + (blockChecksums ? 4 : 0), "block");
    if (blockChecksums && read32(input, at + size) !== xxh32(input, at, at + size)) {
      throw new Lz4FormatError("block checksum mismatch");
    }
    if ((word & UNCOMPRESSED_BLOCK) !== 0) {
      out.room(size);
      out.bytes.set(input.subarray(at, at + size), out.length);
      out.length += size;
    } else {
      decodeBlock(input, at, at + size, out, blockMax, independent ? out.length : frameStart);
    }
    at += size + (blockChecksums ? 4 : 0);
  }
  if (contentSize >= 0 && out.length - frameStart !== contentSize) {
    throw new Lz4FormatError(
      `frame declares ${contentSize} bytes of content, its blocks hold ${out.length - frameStart}`,
    );
  }
  if (contentChecksum) {
    need(4, "content checksum");
    if (read32(input, at) !== xxh32(out.bytes, frameStart, out.length)) {
      throw new Lz4FormatError("content checksum mismatch");
    }
    at += 4;
  }
  return at;
}

/**
 * Decodes one compressed block of `input[start..end)` onto `out`; matches may reach back to
 * `windowStart` (the block's own start when blocks are independent, the frame's when linked).
 */
function decodeBlock(
  input: Uint8Array,
  start: number,
  end: number,
  out: Output,
  blockMax: number,
  windowStart: number,
): void {
  // The block may fill up to its maximum size, and never past the bound.
  const limit = Math.min(out.length + blockMax, out.maxBytes);
  const over = () =>
    limit === out.maxBytes && out.length + blockMax > out.maxBytes
      ? new Lz4LimitError(`decompressed data exceeds the ${out.maxBytes}-byte limit`)
      : new Lz4FormatError("block over its size");
  out.reserve(limit - out.length);
  const bytes = out.bytes;
  let o = out.length;
  let i = start;
  for (;;) {
    if (i >= end) throw new Lz4FormatError("block ends inside a sequence");
    const token = input[i++] as number;
    let literals = token >> 4;
    if (literals === 15) {
      for (;;) {
        if (i >= end) throw new Lz4FormatError("block ends inside a literal length");
        const b = input[i++] as number;
        literals += b;
        if (b !== 255) break;
      }
    }
    if (literals > 0) {
      if (i + literals > end) throw new Lz4FormatError("literals run past the block");
      if (o + literals > limit) throw over();
      // Short runs byte by byte: a subarray per run costs more than the copy.
      if (literals < 32) for (let n = 0; n < literals; n++) bytes[o++] = input[i++] as number;
      else {
        bytes.set(input.subarray(i, i + literals), o);
        o += literals;
        i += literals;
      }
    }
    if (i === end) break; // the last sequence has literals only
    if (i + 2 > end) throw new Lz4FormatError("block ends inside a match offset");
    const offset = (input[i] as number) | ((input[i + 1] as number) << 8);
    i += 2;
    if (offset === 0 || offset > o - windowStart) {
      throw new Lz4FormatError(`match offset ${offset} reaches before the data`);
    }
    let length = token & 0x0f;
    if (length === 15) {
      for (;;) {
        if (i >= end) throw new Lz4FormatError("block ends inside a match length");
        const b = input[i++] as number;
        length += b;
        if (b !== 255) break;
      }
    }
    length += MIN_MATCH;
    if (o + length > limit) throw over();
    let from = o - offset;
    if (offset >= length && length >= 32) {
      bytes.copyWithin(o, from, from + length);
      o += length;
    } else {
      // Short or overlapping (the match repeats the last `offset` bytes): byte by byte.
      for (const stop = o + length; o < stop; ) bytes[o++] = bytes[from++] as number;
    }
  }
  out.length = o;
}

const BLOCK_BYTES = 64 << 10;
const HASH_BITS = 14;

/** One LZ4 frame of `input`: independent 64 KiB blocks, no checksums, no content size. */
export function compressLz4Frame(input: Uint8Array): Uint8Array {
  // Worst case: every block stored as is, plus headers.
  const out = new Uint8Array(7 + input.length + 4 * Math.ceil(input.length / BLOCK_BYTES) + 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  out[4] = 0x60; // version 01, independent blocks
  out[5] = 0x40; // 64 KiB blocks
  out[6] = (xxh32(out, 4, 6) >>> 8) & 0xff;
  let at = 7;
  const table = new Int32Array(1 << HASH_BITS);
  for (let start = 0; start < input.length; start += BLOCK_BYTES) {
    const end = Math.min(input.length, start + BLOCK_BYTES);
    const size = compressBlock(input, start, end, out, at + 4, table);
    if (size > 0 && size < end - start) {
      view.setUint32(at, size, true);
      at += 4 + size;
    } else {
      view.setUint32(at, (end - start) | UNCOMPRESSED_BLOCK, true);
      out.set(input.subarray(start, end), at + 4);
      at += 4 + end - start;
    }
  }
  view.setUint32(at, 0, true);
  return out.subarray(0, at + 4);
}

/**
 * Greedy compression of `input[start..end)` into `out` at `at`; returns the compressed size,
 * or 0 when it would not be smaller than the input (the caller stores the block as is).
 */
function compressBlock(
  input: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
  table: Int32Array,
): number {
  const limit = at + (end - start) - 1;
  table.fill(-1);
  const hash = (i: number) => Math.imul(read32(input, i), 2654435761) >>> (32 - HASH_BITS);
  let o = at;
  let anchor = start;
  let i = start;
  const matchLimit = end - LAST_LITERALS;
  while (i + MF_LIMIT <= end) {
    const h = hash(i);
    const candidate = table[h] as number;
    table[h] = i;
    if (candidate < 0 || i - candidate > 0xffff || read32(input, candidate) !== read32(input, i)) {
      i++;
      continue;
    }
    let length = MIN_MATCH;
    while (i + length < matchLimit && input[candidate + length] === input[i + length]) length++;
    const literals = i - anchor;
    // Token, lengths (one byte per 255), literals and the offset must fit before `limit`.
    const lengthBytes = Math.ceil(literals / 255) + Math.ceil(length / 255);
    if (o + 1 + literals + lengthBytes + 2 + LAST_LITERALS > limit) {
      return 0;
    }
    o = writeSequence(out, o, input, anchor, literals, i - candidate, length);
    i += length;
    anchor = i;
  }
  const literals = end - anchor;
  if (o + 1 + literals + Math.ceil(literals / 255) > limit) return 0;
  o = writeSequence(out, o, input, anchor, literals, 0, 0);
  return o - at;
}

function writeSequence(
  out: Uint8Array,
  o: number,
  input: Uint8Array,
  anchor: number,
  literals: number,
  offset: number,
  matchLength: number,
): number {
  const tokenAt = o++;
  let token = (literals >= 15 ? 15 : literals) << 4;
  if (literals >= 15) o = writeLength(out, o, literals - 15);
  out.set(input.subarray(anchor, anchor + literals), o);
  o += literals;
  if (offset > 0) {
    out[o++] = offset & 0xff;
    out[o++] = offset >> 8;
    const rest = matchLength - MIN_MATCH;
    token |= rest >= 15 ? 15 : rest;
    if (rest >= 15) o = writeLength(out, o, rest - 15);
  }
  out[tokenAt] = token;
  return o;
}

function writeLength(out: Uint8Array, o: number, n: number): number {
  let left = n;
  while (left >= 255) {
    out[o++] = 255;
    left -= 255;
  }
  out[o++] = left;
  return o;
}
