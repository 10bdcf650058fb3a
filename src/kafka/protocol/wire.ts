/**
 * Kafka wire primitives: a bounds-checked reader and a growable writer for the
 * protocol's big-endian integers, varints, strings, bytes, arrays and tagged fields
 * (classic and "compact"/flexible encodings). Every read past the end throws
 * `WireError`, which the connection turns into "close this connection".
 */

export class WireError extends Error {
  override name = "WireError";
}

const textDecoder = new TextDecoder("utf-8", { fatal: false });
const textEncoder = new TextEncoder();

/** Reads Kafka primitives from a byte buffer; throws WireError on truncation. */
export class Reader {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  offset: number;
  readonly end: number;

  constructor(buf: Uint8Array, offset = 0, end = buf.length) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(n: number): number {
    if (n < 0 || this.offset + n > this.end) {
      throw new WireError(`truncated: need ${n} bytes at ${this.offset}, have ${this.remaining}`);
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  int8(): number {
    return this.view.getInt8(this.need(1));
  }
  uint8(): number {
    return this.view.getUint8(this.need(1));
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  int16(): number {
    return this.view.getInt16(this.need(2));
  }
  int32(): number {
    return this.view.getInt32(this.need(4));
  }
  uint32(): number {
    return this.view.getUint32(this.need(4));
  }
  int64(): bigint {
    return this.view.getBigInt64(this.need(8));
  }
  /** int64 as a JS number (offsets and timestamps fit in 2^53). */
  int64n(): number {
    return Number(this.int64());
  }

  /** Unsigned LEB128 varint (up to 32 bits). */
  uvarint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (shift > 28) throw new WireError("varint too long");
      const b = this.uint8();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  }
  /** Zigzag varint (32 bits). */
  varint(): number {
    const u = this.uvarint();
    return (u >>> 1) ^ -(u & 1);
  }
  /** Zigzag varlong (64 bits) as a number. */
  varlong(): number {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (shift > 63n) throw new WireError("varlong too long");
      const b = this.uint8();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    return Number((result >> 1n) ^ -(result & 1n));
  }

  raw(n: number): Uint8Array {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }

  /** Moves past `n` bytes (bounds-checked) and returns where they start. */
  skip(n: number): number {
    return this.need(n);
  }

  string(): string {
    const len = this.int16();
    if (len < 0) throw new WireError("null where a string is required");
    return textDecoder.decode(this.raw(len));
  }
  nullableString(): string | null {
    const len = this.int16();
    return len < 0 ? null : textDecoder.decode(this.raw(len));
  }
  compactString(): string {
    const s = this.compactNullableString();
    if (s === null) throw new WireError("null where a string is required");
    return s;
  }
  compactNullableString(): string | null {
    const len = this.uvarint() - 1;
    return len < 0 ? null : textDecoder.decode(this.raw(len));
  }
  bytes(): Uint8Array {
    const b = this.nullableBytes();
    if (b === null) throw new WireError("null where bytes are required");
    return b;
  }
  nullableBytes(): Uint8Array | null {
    const len = this.int32();
    return len < 0 ? null : this.raw(len);
  }
  compactBytes(): Uint8Array {
    const b = this.compactNullableBytes();
    if (b === null) throw new WireError("null where bytes are required");
    return b;
  }
  compactNullableBytes(): Uint8Array | null {
    const len = this.uvarint() - 1;
    return len < 0 ? null : this.raw(len);
  }
  uuid(): Uint8Array {
    return this.raw(16);
  }

  /** Classic array (int32 length, -1 = null → []). */
  array<T>(item: (r: Reader) => T): T[] {
    const n = this.int32();
    return this.items(n, item);
  }
  /** Compact array (uvarint length+1, 0 = null → []). */
  compactArray<T>(item: (r: Reader) => T): T[] {
    const n = this.uvarint() - 1;
    return this.items(n, item);
  }
  private items<T>(n: number, item: (r: Reader) => T): T[] {
    if (n <= 0) return [];
    // Every item takes at least one byte, so a count above what is left is a lie.
    if (n > this.remaining)
      throw new WireError(`array of ${n} items with ${this.remaining} bytes left`);
    const out: T[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }

  /** Skips a tagged-field section (flexible versions). */
  taggedFields(): void {
    const n = this.uvarint();
    for (let i = 0; i < n; i++) {
      this.uvarint(); // tag
      const size = this.uvarint();
      this.raw(size);
    }
  }
}

/** Strings shorter than this are tried as ASCII first (`string`, `compactString`). */
const ASCII_FAST_CHARS = 1024;

/** Below this size, `rawRef` copies: a reference costs more than copying a few bytes. */
export const MIN_REF_BYTES = 512;

/** Writes Kafka primitives into a growing buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  /** Position in the own buffer (bytes appended by `rawRef` are not counted; see `length`). */
  offset = 0;
  /** Byte arrays appended by reference, each with the own-buffer position it follows. */
  private refs: { at: number; bytes: Uint8Array }[] | null = null;
  private refBytes = 0;

  constructor(initial = 256) {
    // Views made on one ArrayBuffer: asking a typed array for its `.buffer` costs JSC (Bun)
    // an allocation of the buffer object on every call.
    const buffer = new ArrayBuffer(initial);
    this.buf = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  /** Bytes the own buffer holds before it must grow. */
  get capacity(): number {
    return this.buf.length;
  }

  /**
   * Empties the writer for reuse, keeping its buffer when it holds `capacity` bytes, else
   * taking a new one of that size.
   */
  reset(capacity = 0): this {
    this.offset = 0;
    this.refs = null;
    this.refBytes = 0;
    if (capacity > this.buf.length) {
      const buffer = new ArrayBuffer(capacity);
      this.buf = new Uint8Array(buffer);
      this.view = new DataView(buffer);
    }
    return this;
  }

  /**
   * Makes room for `n` bytes and returns where they go. Callers must call this before
   * reading `this.buf`/`this.view`: it may replace both.
   */
  private ensure(n: number): number {
    const need = this.offset + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const buffer = new ArrayBuffer(size);
      const next = new Uint8Array(buffer);
      next.set(this.buf.subarray(0, this.offset));
      this.buf = next;
      this.view = new DataView(buffer);
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  int8(v: number): this {
    const at = this.ensure(1);
    this.view.setInt8(at, v);
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    const at = this.ensure(2);
    this.view.setInt16(at, v);
    return this;
  }
  int32(v: number): this {
    const at = this.ensure(4);
    this.view.setInt32(at, v);
    return this;
  }
  uint32(v: number): this {
    const at = this.ensure(4);
    this.view.setUint32(at, v);
    return this;
  }
  int64(v: bigint | number): this {
    const at = this.ensure(8);
    this.view.setBigInt64(at, typeof v === "bigint" ? v : BigInt(v));
    return this;
  }
  uvarint(v: number): this {
    let u = v >>> 0;
    while (u >= 0x80) {
      const at = this.ensure(1);
      this.buf[at] = (u & 0x7f) | 0x80;
      u >>>= 7;
    }
    const at = this.ensure(1);
    this.buf[at] = u;
    return this;
  }
  varint(v: number): this {
    return this.uvarint(((v << 1) ^ (v >> 31)) >>> 0);
  }
  varlong(v: number | bigint): this {
    const b = BigInt(v);
    let u = BigInt.asUintN(64, (b << 1n) ^ (b >> 63n));
    while (u >= 0x80n) {
      const at = this.ensure(1);
      this.buf[at] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    const at = this.ensure(1);
    this.buf[at] = Number(u);
    return this;
  }
  raw(bytes: Uint8Array): this {
    const at = this.ensure(bytes.length);
    this.buf.set(bytes, at);
    return this;
  }

  /**
   * The char codes of `s`, one byte each, when every one is ASCII; false (and nothing
   * written) at the first that is not.
   */
  tryAscii(s: string): boolean {
    const at = this.ensure(s.length);
    const buf = this.buf;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        this.offset = at;
        return false;
      }
      buf[at + i] = c;
    }
    return true;
  }

  string(s: string): this {
    // ASCII (topic names, client ids, correlation ids) is copied as is: its length is its
    // byte count, and no encoded copy is made.
    if (s.length < ASCII_FAST_CHARS) {
      const start = this.offset;
      if (this.int16(s.length).tryAscii(s)) return this;
      this.offset = start;
    }
    const b = textEncoder.encode(s);
    return this.int16(b.length).raw(b);
  }
  nullableString(s: string | null | undefined): this {
    return s == null ? this.int16(-1) : this.string(s);
  }
  compactString(s: string): this {
    if (s.length < ASCII_FAST_CHARS) {
      const start = this.offset;
      if (this.uvarint(s.length + 1).tryAscii(s)) return this;
      this.offset = start;
    }
    const b = textEncoder.encode(s);
    return this.uvarint(b.length + 1).raw(b);
  }
  compactNullableString(s: string | null | undefined): this {
    return s == null ? this.uvarint(0) : this.compactString(s);
  }
  bytes(b: Uint8Array): this {
    return this.int32(b.length).raw(b);
  }
  nullableBytes(b: Uint8Array | null | undefined): this {
    return b == null ? this.int32(-1) : this.bytes(b);
  }
  compactBytes(b: Uint8Array): this {
    return this.uvarint(b.length + 1).raw(b);
  }
  compactNullableBytes(b: Uint8Array | null | undefined): this {
    return b == null ? this.uvarint(0) : this.compactBytes(b);
  }
  uuid(b: Uint8Array): this {
    return this.raw(b);
  }

  array<T>(items: readonly T[], item: (w: Writer, v: T) => void): this {
    this.int32(items.length);
    for (const v of items) item(this, v);
    return this;
  }
  nullableArray<T>(items: readonly T[] | null, item: (w: Writer, v: T) => void): this {
    if (items === null) return this.int32(-1);
    return this.array(items, item);
  }
  compactArray<T>(items: readonly T[], item: (w: Writer, v: T) => void): this {
    this.uvarint(items.length + 1);
    for (const v of items) item(this, v);
    return this;
  }
  /** An empty tagged-field section. */
  taggedFields(): this {
    return this.uvarint(0);
  }

  /** Reserves an int32 to be patched later (e.g. a size prefix); returns its position. */
  reserveInt32(): number {
    return this.ensure(4);
  }
  patchInt32(at: number, v: number): void {
    this.view.setInt32(at, v);
  }
  patchUint32(at: number, v: number): void {
    this.view.setUint32(at, v);
  }

  /**
   * Appends bytes without copying them (large record batches in Fetch responses, large
   * record values in Produce requests): the caller must not change them until the request
   * or response has been written out.
   */
  rawRef(bytes: Uint8Array): this {
    if (bytes.length < MIN_REF_BYTES) return this.raw(bytes);
    if (this.refs === null) this.refs = [];
    this.refs.push({ at: this.offset, bytes });
    this.refBytes += bytes.length;
    return this;
  }

  /** Total bytes written, including those appended by reference. */
  get length(): number {
    return this.offset + this.refBytes;
  }

  /**
   * The written bytes as views in order, without copying (for corked socket writes): from
   * own-buffer position `start` on (see `offset`), with the bytes appended by reference while
   * the writer was at or past it.
   */
  segments(start = 0): Uint8Array[] {
    return this.pieces(this.buf, start);
  }

  /**
   * The written bytes as pieces that stay valid when the writer is reused or reset: its own
   * bytes copied (one copy of them all), the bytes appended by reference as they are.
   */
  detachedSegments(): Uint8Array[] {
    return this.pieces(this.buf.slice(0, this.offset), 0);
  }

  /** `own` (the own bytes, at their positions) from `start` on, with the references between. */
  private pieces(own: Uint8Array, start: number): Uint8Array[] {
    const refs = this.refs;
    if (refs === null) return [own.subarray(start, this.offset)];
    const out: Uint8Array[] = [];
    let from = start;
    for (const ref of refs) {
      if (ref.at < start) continue;
      if (ref.at > from) out.push(own.subarray(from, ref.at));
      out.push(ref.bytes);
      from = ref.at;
    }
    if (this.offset > from) out.push(own.subarray(from, this.offset));
    return out;
  }

  /**
   * Appends what `other` wrote into its own buffer (not its `rawRef` bytes), copied byte by
   * byte when short: a view of it for `raw` would cost an allocation per call.
   */
  rawFrom(other: Writer): this {
    const n = other.offset;
    const at = this.ensure(n);
    const from = other.buf;
    if (n <= 64) {
      const to = this.buf;
      for (let i = 0; i < n; i++) to[at + i] = from[i] as number;
    } else this.buf.set(from.subarray(0, n), at);
    return this;
  }

  /** A view of the own buffer as written so far (positions as `offset`; `rawRef` bytes not in it). */
  ownBytes(): Uint8Array {
    return this.buf.subarray(0, this.offset);
  }

  /** The written bytes (a view unless `rawRef` was used; copy before reusing the writer). */
  bytesView(): Uint8Array {
    if (this.refs === null) return this.buf.subarray(0, this.offset);
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const segment of this.segments()) {
      out.set(segment, at);
      at += segment.length;
    }
    return out;
  }
}
