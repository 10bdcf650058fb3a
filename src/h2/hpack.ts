/**
 * HPACK (RFC 7541) header compression for the HTTP/2 client: a decoder with a dynamic table, an
 * encoder that only uses the static table, and the Huffman code of Appendix B. Names and values
 * are latin1 strings (one char per byte).
 */

/** A header field: name (lower-case for HTTP/2) and value, both as latin1 strings (one char per byte). */
export type HeaderField = [name: string, value: string];

/** A header block that cannot be decoded: the connection must end with COMPRESSION_ERROR. */
export class HpackError extends Error {
  override name = "HpackError";
}

export interface HpackDecoderOptions {
  /** SETTINGS_HEADER_TABLE_SIZE this side announced (default 4096): the most the peer's table-size updates may set. */
  maxTableBytes?: number;
  /** Largest decoded header list (sum of name + value + 32 per field), default 65536; more throws HpackError("header list larger than N bytes"). */
  maxHeaderListBytes?: number;
  /** Dynamic table size the peer starts with before any size update (default: maxTableBytes). */
  initialTableBytes?: number;
}

// RFC 7541 Appendix B: [code, bit length] for each symbol 0..255 and EOS (256), codes aligned to LSB.
// biome-ignore format: transcribed table, six symbols per line
const HUFFMAN_SPEC: readonly number[] = [
  /*   0 */ 0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28, 0xfffffe4, 28, 0xfffffe5, 28,
  /*   6 */ 0xfffffe6, 28, 0xfffffe7, 28, 0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28,
  /*  12 */ 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28, 0xfffffed, 28, 0xfffffee, 28,
  /*  18 */ 0xfffffef, 28, 0xffffff0, 28, 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28,
  /*  24 */ 0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28, 0xffffff8, 28, 0xffffff9, 28,
  /*  30 */ 0xffffffa, 28, 0xffffffb, 28, 0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12,
  /*  36 */ 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11, 0x3fa, 10, 0x3fb, 10,
  /*  42 */ 0xf9, 8, 0x7fb, 11, 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6,
  /*  48 */ 0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6, 0x1a, 6, 0x1b, 6,
  /*  54 */ 0x1c, 6, 0x1d, 6, 0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8,
  /*  60 */ 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10, 0x1ffa, 13, 0x21, 6,
  /*  66 */ 0x5d, 7, 0x5e, 7, 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7,
  /*  72 */ 0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7, 0x67, 7, 0x68, 7,
  /*  78 */ 0x69, 7, 0x6a, 7, 0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7,
  /*  84 */ 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7, 0xfc, 8, 0x73, 7,
  /*  90 */ 0xfd, 8, 0x1ffb, 13, 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6,
  /*  96 */ 0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5, 0x24, 6, 0x5, 5,
  /* 102 */ 0x25, 6, 0x26, 6, 0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7,
  /* 108 */ 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5, 0x2b, 6, 0x76, 7,
  /* 114 */ 0x2c, 6, 0x8, 5, 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7,
  /* 120 */ 0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15, 0x7fc, 11, 0x3ffd, 14,
  /* 126 */ 0x1ffd, 13, 0xffffffc, 28, 0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20,
  /* 132 */ 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23, 0x3fffd6, 22, 0x7fffda, 23,
  /* 138 */ 0x7fffdb, 23, 0x7fffdc, 23, 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23,
  /* 144 */ 0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23, 0xffffee, 24, 0x7fffe1, 23,
  /* 150 */ 0x7fffe2, 23, 0x7fffe3, 23, 0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23,
  /* 156 */ 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24, 0x3fffda, 22, 0x1fffdd, 21,
  /* 162 */ 0xfffe9, 20, 0x3fffdb, 22, 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21,
  /* 168 */ 0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24, 0x1fffdf, 21, 0x3fffdf, 22,
  /* 174 */ 0x7fffeb, 23, 0x7fffec, 23, 0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21,
  /* 180 */ 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23, 0xfffea, 20, 0x3fffe2, 22,
  /* 186 */ 0x3fffe3, 22, 0x3fffe4, 22, 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23,
  /* 192 */ 0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19, 0x3fffe7, 22, 0x7ffff2, 23,
  /* 198 */ 0x3fffe8, 22, 0x1ffffec, 25, 0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27,
  /* 204 */ 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25, 0x7fff2, 19, 0x1fffe3, 21,
  /* 210 */ 0x3ffffe6, 26, 0x7ffffe0, 27, 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24,
  /* 216 */ 0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26, 0xffffffd, 28, 0x7ffffe3, 27,
  /* 222 */ 0x7ffffe4, 27, 0x7ffffe5, 27, 0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21,
  /* 228 */ 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23, 0x3fffea, 22, 0x3fffeb, 22,
  /* 234 */ 0x1ffffee, 25, 0x1ffffef, 25, 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23,
  /* 240 */ 0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26, 0x7ffffe7, 27, 0x7ffffe8, 27,
  /* 246 */ 0x7ffffe9, 27, 0x7ffffea, 27, 0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27,
  /* 252 */ 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26, 0x3fffffff, 30,
];

// RFC 7541 Appendix A: the static table, index 1..61.
// biome-ignore format: transcribed table
const STATIC_TABLE: readonly HeaderField[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"],
  [":path", "/index.html"], [":scheme", "http"], [":scheme", "https"], [":status", "200"],
  [":status", "204"], [":status", "206"], [":status", "304"], [":status", "400"],
  [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""],
  ["accept", ""], ["access-control-allow-origin", ""], ["age", ""], ["allow", ""],
  ["authorization", ""], ["cache-control", ""], ["content-disposition", ""],
  ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""],
  ["date", ""], ["etag", ""], ["expect", ""], ["expires", ""], ["from", ""], ["host", ""],
  ["if-match", ""], ["if-modified-since", ""], ["if-none-match", ""], ["if-range", ""],
  ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""], ["location", ""],
  ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""],
  ["vary", ""], ["via", ""], ["www-authenticate", ""],
];

const STATIC_COUNT = 61;
const EOS = 256;
const CODES = new Uint32Array(257);
const LENGTHS = new Uint8Array(257);
for (let sym = 0; sym <= EOS; sym++) {
  CODES[sym] = HUFFMAN_SPEC[sym * 2] as number;
  LENGTHS[sym] = HUFFMAN_SPEC[sym * 2 + 1] as number;
}

/** The Appendix B code as flat pairs: code (aligned to the low bit), bit length; symbol 256 is EOS. */
export const HUFFMAN_CODE: readonly number[] = HUFFMAN_SPEC;

// The code tree: node 0 is the root; KIDS[node * 2 + bit] is another node (> 0), a leaf holding
// -(symbol + 1), or 0 when missing. A complete code with 257 leaves has exactly 256 inner nodes.
const KIDS = new Int16Array(512);
const DEPTH = new Uint8Array(256);
const ALL_ONES = new Uint8Array(256); // 1 when every bit on the path from the root is a 1
ALL_ONES[0] = 1;
let innerNodes = 1;
for (let sym = 0; sym <= EOS; sym++) {
  const code = CODES[sym] as number;
  let node = 0;
  for (let i = (LENGTHS[sym] as number) - 1; i > 0; i--) {
    const bit = (code >>> i) & 1;
    let next = KIDS[node * 2 + bit] as number;
    if (next === 0) {
      next = innerNodes++;
      KIDS[node * 2 + bit] = next;
      DEPTH[next] = (DEPTH[node] as number) + 1;
      ALL_ONES[next] = (ALL_ONES[node] as number) & bit;
    }
    node = next;
  }
  KIDS[node * 2 + (code & 1)] = -(sym + 1);
}

// Decoding automaton over 4-bit nibbles: the state is the inner node reached so far. An entry holds
// the next state (bits 0-7) and, with EMIT, a decoded symbol (bits 8-15); a nibble can complete at
// most one symbol since no code is shorter than 5 bits. FAIL marks reaching EOS (or a missing edge).
const EMIT = 0x10000;
const FAIL = 0x20000;
const NIBBLE_TABLE = new Uint32Array(256 * 16);
for (let state = 0; state < 256; state++) {
  for (let nibble = 0; nibble < 16; nibble++) {
    let node = state;
    let entry = 0;
    for (let i = 3; i >= 0; i--) {
      const kid = KIDS[node * 2 + ((nibble >>> i) & 1)] as number;
      if (kid > 0) {
        node = kid;
      } else if (kid === 0 || kid === -(EOS + 1)) {
        entry = FAIL;
        break;
      } else {
        entry = EMIT | ((-kid - 1) << 8);
        node = 0;
      }
    }
    NIBBLE_TABLE[state * 16 + nibble] = entry === FAIL ? FAIL : entry | node;
  }
}

let huffmanScratch = new Uint8Array(512);

function huffmanDecodeRange(src: Uint8Array, start: number, end: number): string {
  const most = (((end - start) * 8) / 5) | 0;
  if (huffmanScratch.length < most) huffmanScratch = new Uint8Array(most * 2);
  const out = huffmanScratch;
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    let entry = NIBBLE_TABLE[(state << 4) | (byte >>> 4)] as number;
    if (entry & FAIL) throw new HpackError("EOS symbol inside a Huffman-coded string");
    if (entry & EMIT) out[n++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
    entry = NIBBLE_TABLE[(state << 4) | (byte & 15)] as number;
    if (entry & FAIL) throw new HpackError("EOS symbol inside a Huffman-coded string");
    if (entry & EMIT) out[n++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
  }
  if (state !== 0) {
    if (!ALL_ONES[state]) throw new HpackError("Huffman padding is not a prefix of EOS");
    if ((DEPTH[state] as number) > 7) throw new HpackError("Huffman padding longer than 7 bits");
  }
  return latin1(out, 0, n);
}

/** Decodes a Huffman-coded string (latin1 result); throws HpackError on EOS inside the string, padding longer than 7 bits, or padding that is not the EOS prefix (all ones). */
export function huffmanDecode(bytes: Uint8Array): string {
  return huffmanDecodeRange(bytes, 0, bytes.length);
}

/** Huffman-encodes a latin1 string (for tests and completeness). */
export function huffmanEncode(text: string): Uint8Array {
  let bits = 0;
  for (let i = 0; i < text.length; i++) bits += LENGTHS[byteAt(text, i)] as number;
  const out = new Uint8Array((bits + 7) >>> 3);
  let acc = 0; // at most 7 pending bits plus one 30-bit code: exact in a double
  let pending = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const sym = byteAt(text, i);
    const len = LENGTHS[sym] as number;
    acc = acc * 2 ** len + (CODES[sym] as number);
    pending += len;
    while (pending >= 8) {
      pending -= 8;
      const unit = 2 ** pending;
      out[o++] = Math.floor(acc / unit);
      acc %= unit;
    }
  }
  if (pending > 0) out[o] = (acc << (8 - pending)) | (0xff >>> pending);
  return out;
}

function byteAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c > 0xff) throw new RangeError(`character U+${c.toString(16)} is not latin1`);
  return c;
}

/** Bytes to a latin1 string: String.fromCharCode per byte (TextDecoder("latin1") is windows-1252). */
function latin1(src: Uint8Array, start: number, end: number): string {
  let s = "";
  if (end - start <= 32) {
    for (let i = start; i < end; i++) s += String.fromCharCode(src[i] as number);
    return s;
  }
  for (let i = start; i < end; i += 4096) {
    const chunk = src.subarray(i, Math.min(end, i + 4096));
    s += String.fromCharCode.apply(null, chunk as unknown as number[]);
  }
  return s;
}

const MAX_INTEGER = 0x7fffffff;
let intEnd = 0; // offset just past the integer readInt last decoded
let strEnd = 0; // offset just past the string readString last decoded

function readInt(src: Uint8Array, pos: number, prefixBits: number): number {
  if (pos >= src.length) throw new HpackError("truncated integer");
  const max = (1 << prefixBits) - 1;
  let value = (src[pos++] as number) & max;
  if (value === max) {
    let shift = 0;
    let byte: number;
    do {
      if (pos >= src.length) throw new HpackError("truncated integer");
      if (shift > 28) throw new HpackError("integer too large");
      byte = src[pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    if (value > MAX_INTEGER) throw new HpackError("integer too large");
  }
  intEnd = pos;
  return value;
}

function readString(src: Uint8Array, pos: number): string {
  if (pos >= src.length) throw new HpackError("truncated string literal");
  const huffman = ((src[pos] as number) & 0x80) !== 0;
  const length = readInt(src, pos, 7);
  const start = intEnd;
  const end = start + length;
  if (end > src.length) throw new HpackError("string literal runs past the end of the block");
  strEnd = end;
  if (length > LITERAL_CACHE_BYTES || length === 0) {
    return huffman ? huffmanDecodeRange(src, start, end) : latin1(src, start, end);
  }
  // Literals that come back block after block (nghttp2's clients, Node's among them, never
  // index :path): the text decoded last time from the same bytes.
  let hash = (huffman ? 0x9e3779b9 : 0x811c9dc5) ^ length;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ (src[i] as number), 0x01000193);
  const hit = literalCache.get(hash);
  if (hit !== undefined && hit.huffman === huffman && hit.bytes.length === length) {
    const bytes = hit.bytes;
    let same = true;
    for (let i = 0; i < length; i++) {
      if (bytes[i] !== src[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return hit.text;
  }
  const text = huffman ? huffmanDecodeRange(src, start, end) : latin1(src, start, end);
  if (literalCache.size >= LITERAL_CACHE_ENTRIES) literalCache.clear();
  literalCache.set(hash, { bytes: src.slice(start, end), huffman, text });
  return text;
}

/**
 * Literal strings decoded lately, by a hash of their encoded bytes (checked byte by byte):
 * shared by every connection, at most `LITERAL_CACHE_ENTRIES` of at most
 * `LITERAL_CACHE_BYTES` encoded bytes each (emptied when full, so junk cannot pin it).
 */
const literalCache = new Map<number, { bytes: Uint8Array; huffman: boolean; text: string }>();
const LITERAL_CACHE_ENTRIES = 256;
const LITERAL_CACHE_BYTES = 96;

function writeInt(out: Uint8Array, o: number, value: number, prefixBits: number, flags: number) {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[o++] = flags | value;
    return o;
  }
  out[o++] = flags | max;
  let rest = value - max;
  while (rest >= 0x80) {
    out[o++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[o++] = rest;
  return o;
}

/** Decodes an HPACK integer (RFC 7541 §5.1) starting in the low `prefixBits` bits of bytes[at]; returns [value, offset after it]. */
export function decodeInteger(bytes: Uint8Array, at: number, prefixBits: number): [number, number] {
  const value = readInt(bytes, at, prefixBits);
  return [value, intEnd];
}

/** Encodes an HPACK integer with a `prefixBits`-bit prefix (the first byte's other bits zero). */
export function encodeInteger(value: number, prefixBits: number): Uint8Array {
  const out = new Uint8Array(6);
  return out.slice(0, writeInt(out, 0, value, prefixBits, 0));
}

export class HpackDecoder {
  private readonly maxTableBytes: number;
  private readonly maxListBytes: number;
  private capacity: number; // the table size the peer last set
  private bytes = 0;
  // Dynamic table as a ring: entry 1 (newest) at `head`, entry k at (head + k - 1) & mask.
  private names: string[] = new Array<string>(16).fill("");
  private values: string[] = new Array<string>(16).fill("");
  private mask = 15;
  private head = 0;
  private count = 0;
  private foundName = "";
  private foundValue = "";

  constructor(options: HpackDecoderOptions = {}) {
    this.maxTableBytes = options.maxTableBytes ?? 4096;
    this.maxListBytes = options.maxHeaderListBytes ?? 65536;
    this.capacity = options.initialTableBytes ?? this.maxTableBytes;
  }

  /** Decodes one complete header block (HEADERS + CONTINUATION payloads joined), updating the dynamic table. Throws HpackError on anything malformed. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let pos = 0;
    let listBytes = 0;
    let updates = 0;
    while (pos < block.length) {
      const first = block[pos] as number;
      let name: string;
      let value: string;
      if (first & 0x80) {
        this.lookup(readInt(block, pos, 7));
        pos = intEnd;
        name = this.foundName;
        value = this.foundValue;
      } else if ((first & 0xe0) === 0x20) {
        if (fields.length > 0) throw new HpackError("table size update after a header field");
        if (++updates > 2) throw new HpackError("more than two dynamic table size updates");
        const size = readInt(block, pos, 5);
        pos = intEnd;
        if (size > this.maxTableBytes) throw new HpackError(`table size ${size} above the limit`);
        this.capacity = size;
        this.evictTo(size);
        continue;
      } else {
        // 01xxxxxx: with incremental indexing; 0000xxxx: without indexing; 0001xxxx: never indexed.
        const indexing = (first & 0x40) !== 0;
        const index = readInt(block, pos, indexing ? 6 : 4);
        pos = intEnd;
        if (index === 0) {
          name = readString(block, pos);
          pos = strEnd;
        } else {
          this.lookup(index);
          name = this.foundName;
        }
        value = readString(block, pos);
        pos = strEnd;
        if (indexing) this.insert(name, value);
      }
      listBytes += name.length + value.length + 32;
      if (listBytes > this.maxListBytes) {
        throw new HpackError(`header list larger than ${this.maxListBytes} bytes`);
      }
      fields.push([name, value]);
    }
    return fields;
  }

  private lookup(index: number): void {
    if (index === 0) throw new HpackError("header field index 0");
    if (index <= STATIC_COUNT) {
      const field = STATIC_TABLE[index - 1] as HeaderField;
      this.foundName = field[0];
      this.foundValue = field[1];
      return;
    }
    const k = index - STATIC_COUNT - 1;
    if (k >= this.count) throw new HpackError(`header field index ${index} out of range`);
    const slot = (this.head + k) & this.mask;
    this.foundName = this.names[slot] as string;
    this.foundValue = this.values[slot] as string;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    if (size > this.capacity) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.capacity - size);
    if (this.count === this.names.length) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.count++;
    this.bytes += size;
  }

  /** Evicts the oldest entries until the table holds at most `limit` bytes. */
  private evictTo(limit: number): void {
    while (this.bytes > limit) {
      const slot = (this.head + this.count - 1) & this.mask;
      this.bytes -= (this.names[slot] as string).length + (this.values[slot] as string).length + 32;
      this.names[slot] = "";
      this.values[slot] = "";
      this.count--;
    }
  }

  private grow(): void {
    const names = new Array<string>(this.names.length * 2).fill("");
    const values = new Array<string>(this.names.length * 2).fill("");
    for (let k = 0; k < this.count; k++) {
      names[k] = this.names[(this.head + k) & this.mask] as string;
      values[k] = this.values[(this.head + k) & this.mask] as string;
    }
    this.names = names;
    this.values = values;
    this.mask = names.length - 1;
    this.head = 0;
  }
}

// Static table by name: the first index with that name, and the index of each (name, value) pair.
const STATIC_BY_NAME = new Map<string, { index: number; values: Map<string, number> }>();
for (let i = 0; i < STATIC_COUNT; i++) {
  const [name, value] = STATIC_TABLE[i] as HeaderField;
  let entry = STATIC_BY_NAME.get(name);
  if (entry === undefined) {
    entry = { index: i + 1, values: new Map() };
    STATIC_BY_NAME.set(name, entry);
  }
  if (!entry.values.has(value)) entry.values.set(value, i + 1);
}

let encodeScratch = new Uint8Array(1024);

function writeRaw(out: Uint8Array, o: number, text: string): number {
  o = writeInt(out, o, text.length, 7, 0);
  for (let i = 0; i < text.length; i++) out[o++] = byteAt(text, i);
  return o;
}

/**
 * Throws the RangeError `encode` would for a field that is not latin1, without encoding it
 * (for blocks encoded later, when they are sent: the dynamic table must see blocks in the
 * order they go out).
 */
export function checkLatin1(fields: readonly HeaderField[]): void {
  for (const [name, value] of fields) {
    for (let i = 0; i < name.length; i++) byteAt(name, i);
    for (let i = 0; i < value.length; i++) byteAt(value, i);
  }
}

/**
 * Header names whose values repeat call after call on a connection (the method's path, the
 * authority, content types, `te`, the agent, an OK status): these go into the dynamic table
 * and are sent as one index from then on. Anything else (metadata, timeouts, messages,
 * credentials) stays a literal that is never added, so one connection's calls cannot fill the
 * table with values that never come back.
 */
const INDEXED_NAMES = new Set([
  ":authority",
  ":path",
  "content-type",
  "te",
  "user-agent",
  "grpc-accept-encoding",
  "grpc-encoding",
  "accept-encoding",
  "grpc-status",
]);

/** The most the encoder's dynamic table holds: HTTP/2's default size, which needs no ack. */
const ENCODER_TABLE_BYTES = 4096;

/** A value longer than this is not added (it would push out many small ones). */
const MAX_INDEXED_VALUE = 512;

/**
 * Encodes header blocks (RFC 7541). A field whose name and value are both in the static
 * table is indexed; a field of an `INDEXED_NAMES` name is added to the dynamic table the first
 * time and indexed after; anything else is a literal "without indexing", with the static
 * table's name index when the name is there. Strings are never Huffman-coded.
 *
 * The table is at most 4096 bytes, the size every HTTP/2 decoder starts with, so nothing needs
 * the peer's acknowledgement; a peer that allows less (`setPeerTableSize`, from its SETTINGS)
 * is told of the smaller table at the start of the next block, as RFC 7541 §4.2 asks. Blocks
 * must be sent in the order they were encoded.
 */
export class HpackEncoder {
  private capacity = ENCODER_TABLE_BYTES;
  private bytes = 0;
  /** Entries oldest first from `first`; entry n (counting every one ever added) at n - first. */
  private names: string[] = [];
  private values: string[] = [];
  private first = 0;
  private added = 0;
  /** The number of the latest entry of each name and value. */
  private readonly numbers = new Map<string, Map<string, number>>();
  /** The smallest size the table had since the last block, when a size update is owed. */
  private owedMin = -1;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: the table never grows past it. */
  setPeerTableSize(bytes: number): void {
    const next = Math.min(bytes, ENCODER_TABLE_BYTES);
    if (next === this.capacity) return;
    this.capacity = next;
    this.evictTo(next);
    this.owedMin = this.owedMin < 0 ? next : Math.min(this.owedMin, next);
  }

  encode(fields: readonly HeaderField[]): Uint8Array {
    try {
      return this.encodeBlock(fields);
    } catch (err) {
      // A field that cannot be encoded (not latin1) leaves the table as the block had it so
      // far, though the block is never sent: empty it, and say so with the next block.
      this.evictTo(0);
      this.owedMin = 0;
      throw err;
    }
  }

  private encodeBlock(fields: readonly HeaderField[]): Uint8Array {
    let out = encodeScratch;
    let o = 0;
    if (this.owedMin >= 0) {
      if (this.owedMin < this.capacity) o = writeInt(out, o, this.owedMin, 5, 0x20);
      o = writeInt(out, o, this.capacity, 5, 0x20);
      this.owedMin = -1;
    }
    for (const [name, value] of fields) {
      // Worst case: a first byte and two 6-byte lengths around the two strings.
      const need = o + name.length + value.length + 13;
      if (need > out.length) {
        const bigger = new Uint8Array(Math.max(need, out.length * 2));
        bigger.set(out.subarray(0, o));
        out = encodeScratch = bigger;
      }
      const known = STATIC_BY_NAME.get(name);
      if (known !== undefined) {
        const full = known.values.get(value);
        if (full !== undefined) {
          o = writeInt(out, o, full, 7, 0x80);
          continue;
        }
      }
      const indexable =
        INDEXED_NAMES.has(name) &&
        value.length <= MAX_INDEXED_VALUE &&
        name.length + value.length + 32 <= this.capacity;
      if (indexable) {
        const number = this.numbers.get(name)?.get(value);
        if (number !== undefined) {
          o = writeInt(out, o, STATIC_COUNT + this.added - number, 7, 0x80);
          continue;
        }
      }
      if (known !== undefined)
        o = writeInt(out, o, known.index, indexable ? 6 : 4, indexable ? 0x40 : 0);
      else {
        out[o++] = indexable ? 0x40 : 0;
        o = writeRaw(out, o, name);
      }
      o = writeRaw(out, o, value);
      if (indexable) this.add(name, value);
    }
    return out.slice(0, o);
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evictTo(this.capacity - size);
    this.names.push(name);
    this.values.push(value);
    this.bytes += size;
    let byValue = this.numbers.get(name);
    if (byValue === undefined) {
      byValue = new Map();
      this.numbers.set(name, byValue);
    }
    byValue.set(value, this.added++);
  }

  /** Drops the oldest entries until the table holds at most `limit` bytes. */
  private evictTo(limit: number): void {
    while (this.bytes > limit) {
      const at = this.first - (this.added - this.names.length);
      const name = this.names[at] as string;
      const value = this.values[at] as string;
      this.bytes -= name.length + value.length + 32;
      const byValue = this.numbers.get(name);
      if (byValue?.get(value) === this.first) {
        byValue.delete(value);
        if (byValue.size === 0) this.numbers.delete(name);
      }
      this.first++;
    }
    // Compact the arrays now and then: entries before `first` are gone.
    const dropped = this.first - (this.added - this.names.length);
    if (dropped > 64 && dropped * 2 > this.names.length) {
      this.names = this.names.slice(dropped);
      this.values = this.values.slice(dropped);
    }
  }
}
