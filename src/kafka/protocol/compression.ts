/**
 * Kafka's record compression codecs (the low 3 bits of a batch's attributes), in both
 * directions, on Node 20+, Bun and Deno alike, without native builds:
 * - gzip: node:zlib.
 * - snappy: snappyjs (pure JS, MIT) for raw Snappy blocks; the xerial framing the Java
 *   client writes (magic, then length-prefixed blocks) is read here, and written too.
 *   librdkafka writes raw Snappy: both are read.
 * - lz4: the LZ4 frame format (lz4-frame.ts).
 * - zstd: node:zlib where the runtime has it (Bun, Deno, Node 22.15+); fzstd (pure JS, MIT)
 *   elsewhere for reading. Writing zstd needs node:zlib's: `zstdCompressionAvailable()`.
 *
 * Every decompression is bounded by the caller's `maxBytes`: a batch that would inflate past
 * it fails with CompressionError instead of taking the process's memory.
 */
import * as zlib from "node:zlib";
import { Decompress as ZstdStream } from "fzstd";
import * as snappy from "snappyjs";
import { concatBytes } from "../../bytes.ts";
import { compressLz4Frame, decompressLz4Frames, Lz4LimitError } from "./lz4-frame.ts";

/** The codecs, by the names Kafka's `compression.type` uses. */
export const compressionCodecs = ["none", "gzip", "snappy", "lz4", "zstd"] as const;
export type CompressionCodec = (typeof compressionCodecs)[number];

/** Why compressed records could not be read (or written). */
export class CompressionError extends Error {
  override name = "CompressionError";
}

/** The attribute bits of `codec`. */
export function codecId(codec: CompressionCodec): number {
  return compressionCodecs.indexOf(codec);
}

/** A codec id's name ("codec 5" for ids Kafka does not define). */
export function codecName(id: number): string {
  return compressionCodecs[id] ?? `codec ${id}`;
}

type ZstdZlib = {
  zstdCompressSync?: (input: Uint8Array) => Buffer;
  zstdDecompressSync?: (input: Uint8Array, options: { maxOutputLength: number }) => Buffer;
};
const nativeZstd = zlib as unknown as ZstdZlib;

/** Whether this runtime can write zstd batches (node:zlib has zstd: Bun, Deno, Node 22.15+). */
export function zstdCompressionAvailable(): boolean {
  return typeof nativeZstd.zstdCompressSync === "function";
}

/** Compresses a batch's records part with `codec` (never "none"). */
export function compressRecords(codec: CompressionCodec, records: Uint8Array): Uint8Array {
  switch (codec) {
    case "gzip":
      return zlib.gzipSync(records);
    case "snappy":
      return compressXerialSnappy(records);
    case "lz4":
      return compressLz4Frame(records);
    case "zstd":
      if (!nativeZstd.zstdCompressSync) {
        throw new CompressionError(
          `zstd compression needs node:zlib zstd (Bun, Deno or Node 22.15+); this is Node ${process.versions.node}`,
        );
      }
      return nativeZstd.zstdCompressSync(records);
    case "none":
      return records;
  }
}

/** How zstd is read; "js" forces the pure-JS reader (tests, the bench). */
export type ZstdReader = "auto" | "js";

/**
 * Decompresses a batch's records part compressed with codec `id`; throws CompressionError
 * when the data is malformed, the codec unknown, or the output would pass `maxBytes`.
 */
export function decompressRecords(
  id: number,
  data: Uint8Array,
  maxBytes: number,
  zstdReader: ZstdReader = "auto",
): Uint8Array {
  try {
    switch (id) {
      case 0:
        return data;
      case 1:
        return zlib.gunzipSync(data, { maxOutputLength: maxBytes });
      case 2:
        return decompressSnappy(data, maxBytes);
      case 3:
        return decompressLz4Frames(data, maxBytes);
      case 4:
        if (nativeZstd.zstdDecompressSync && zstdReader === "auto") {
          return nativeZstd.zstdDecompressSync(data, { maxOutputLength: maxBytes });
        }
        return decompressZstdJs(data, maxBytes);
    }
  } catch (error) {
    if (error instanceof CompressionError) throw error;
    if (error instanceof Lz4LimitError) throw overLimit("lz4", maxBytes);
    const code = (error as { code?: unknown }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") throw overLimit(codecName(id), maxBytes);
    throw new CompressionError(`${codecName(id)} data is malformed: ${(error as Error).message}`);
  }
  throw new CompressionError(`unknown compression codec id ${id} (Kafka defines 0-4)`);
}

function overLimit(codec: string, maxBytes: number): CompressionError {
  return new CompressionError(
    `${codec} records decompress to more than ${maxBytes} bytes, the limit for one batch`,
  );
}

// --- snappy ------------------------------------------------------------------------------

const XERIAL_MAGIC = [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00];
/** Magic (8), version (4), compatible version (4). */
const XERIAL_HEADER_BYTES = 16;
/** Input bytes per xerial block, as the Java client's snappy stream writes them. */
const XERIAL_BLOCK_BYTES = 32 * 1024;

function isXerial(data: Uint8Array): boolean {
  if (data.length < XERIAL_HEADER_BYTES) return false;
  for (let i = 0; i < XERIAL_MAGIC.length; i++) if (data[i] !== XERIAL_MAGIC[i]) return false;
  return true;
}

function decompressSnappy(data: Uint8Array, maxBytes: number): Uint8Array {
  if (!isXerial(data)) return snappyBlock(data, maxBytes, maxBytes);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const blocks: Uint8Array[] = [];
  let total = 0;
  for (let at = XERIAL_HEADER_BYTES; at < data.length; ) {
    if (data.length - at < 4) throw new CompressionError("snappy: truncated xerial block length");
    const length = view.getInt32(at);
    at += 4;
    if (length < 0 || length > data.length - at) {
      throw new CompressionError(`snappy: xerial block of ${length} bytes runs past the data`);
    }
    const block = snappyBlock(data.subarray(at, at + length), maxBytes - total, maxBytes);
    blocks.push(block);
    total += block.length;
    at += length;
  }
  return concatBytes(blocks, total);
}

/**
 * One raw Snappy block of at most `leftBytes` (of the batch's `maxBytes`); snappyjs refuses
 * a declared length over it before allocating.
 */
function snappyBlock(data: Uint8Array, leftBytes: number, maxBytes: number): Uint8Array {
  try {
    return snappy.uncompress(data, leftBytes);
  } catch (error) {
    const message = (error as Error).message;
    if (/too big/.test(message)) throw overLimit("snappy", maxBytes);
    throw new CompressionError(`snappy data is malformed: ${message}`);
  }
}

function compressXerialSnappy(records: Uint8Array): Uint8Array {
  const blocks: Uint8Array[] = [];
  let total = XERIAL_HEADER_BYTES;
  for (let at = 0; at < records.length; at += XERIAL_BLOCK_BYTES) {
    const block = snappy.compress(records.subarray(at, at + XERIAL_BLOCK_BYTES));
    blocks.push(block);
    total += 4 + block.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(XERIAL_MAGIC);
  view.setInt32(8, 1); // version
  view.setInt32(12, 1); // oldest version that reads it
  let at = XERIAL_HEADER_BYTES;
  for (const block of blocks) {
    view.setInt32(at, block.length);
    out.set(block, at + 4);
    at += 4 + block.length;
  }
  return out;
}

// --- zstd (pure JS) ------------------------------------------------------------------------

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * fzstd allocates a frame's whole window (or declared content size) up front: each frame's
 * header is checked against the bound first, then the output is counted as it streams.
 */
function decompressZstdJs(data: Uint8Array, maxBytes: number): Uint8Array {
  checkZstdFrames(data, maxBytes);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const stream = new ZstdStream((chunk) => {
    total += chunk.length;
    if (total > maxBytes) throw overLimit("zstd", maxBytes);
    // fzstd may reuse its window buffer for later chunks.
    chunks.push(chunk.slice());
  });
  stream.push(data, true);
  return concatBytes(chunks, total);
}

/** Walks the frames' headers and block headers; throws on what fzstd should not be given. */
function checkZstdFrames(data: Uint8Array, maxBytes: number): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (data.length - at < n) throw new CompressionError("zstd data is truncated");
  };
  while (at < data.length) {
    need(4);
    const magic = view.getUint32(at, true);
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      need(8);
      at += 8 + view.getUint32(at + 4, true);
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new CompressionError("zstd data is malformed: bad frame magic");
    at += 4;
    need(1);
    const fhd = data[at++] as number;
    const singleSegment = (fhd & 0x20) !== 0;
    const checksum = (fhd & 0x04) !== 0;
    const dictBytes = [0, 1, 2, 4][fhd & 0x03] as number;
    const fcsFlag = fhd >> 6;
    const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
    let window = 0;
    if (!singleSegment) {
      need(1);
      const wd = data[at++] as number;
      const base = 2 ** (10 + (wd >> 3));
      window = base + (base / 8) * (wd & 0x07);
    }
    need(dictBytes + fcsBytes);
    if (dictBytes > 0 && readLe(data, at, dictBytes) !== 0) {
      throw new CompressionError("zstd frames that need a dictionary are not read");
    }
    at += dictBytes;
    let contentSize = -1;
    if (fcsBytes > 0) contentSize = readLe(data, at, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
    at += fcsBytes;
    if (contentSize > maxBytes || window > maxBytes) throw overLimit("zstd", maxBytes);
    for (let last = false; !last; ) {
      need(3);
      const header = readLe(data, at, 3);
      at += 3;
      last = (header & 1) === 1;
      const type = (header >> 1) & 0x03;
      const size = header >>> 3;
      if (type === 3) throw new CompressionError("zstd data is malformed: reserved block type");
      const stored = type === 1 ? 1 : size; // an RLE block stores one byte
      need(stored);
      at += stored;
    }
    if (checksum) {
      need(4);
      at += 4;
    }
  }
}

function readLe(data: Uint8Array, at: number, bytes: number): number {
  let value = 0;
  for (let i = bytes - 1; i >= 0; i--) value = value * 256 + (data[at + i] as number);
  return value;
}
