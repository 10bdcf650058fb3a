/**
 * The codecs on their edge cases, with the reference tools as independent writers and
 * readers where they exist (the `lz4` and `zstd` command lines): multi-block LZ4 frames,
 * linked and independent, with and without checksums and content size; xerial Snappy in
 * several chunks and raw Snappy; zstd frames without a content size, through node:zlib and
 * the pure-JS reader; empty input; and data over the decompression bound (a bomb), which
 * fails without allocating its size.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as snappy from "snappyjs";
import { describe, expect, it } from "vitest";
import {
  CompressionError,
  codecId,
  compressionCodecs,
  compressRecords,
  decompressRecords,
  zstdCompressionAvailable,
} from "./compression.ts";
import { compressLz4Frame, decompressLz4Frames, xxh32 } from "./lz4-frame.ts";

const LIMIT = 64 << 20;

/** Text that compresses, long enough for several 64 KiB blocks. */
function sample(bytes: number): Uint8Array {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const line = `{"id":${i},"name":"record ${i}","pad":"${"x".repeat(i % 37)}"}\n`;
    parts.push(line);
    length += line.length;
  }
  return new TextEncoder().encode(parts.join("")).subarray(0, bytes);
}

/** Bytes that do not compress (a fixed pseudo-random sequence). */
function noise(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = 0x12345678;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const tool = (name: string, args: string[], input: Uint8Array): Uint8Array =>
  new Uint8Array(execFileSync(name, args, { input, maxBuffer: 256 << 20 }));

/** The lz4 tool on a file: only then does it know (and may write) the content size. */
function lz4File(flags: string[], input: Uint8Array): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "lz4-"));
  try {
    const file = join(dir, "in");
    writeFileSync(file, input);
    return new Uint8Array(
      execFileSync("lz4", ["-c", "-q", ...flags, file], { maxBuffer: 256 << 20 }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("lz4 frames", () => {
  it("xxHash32 of nothing is the reference value", () => {
    expect(xxh32(new Uint8Array(0))).toBe(0x02cc5d05);
  });

  const variants: [string, string[]][] = [
    ["linked blocks, block and content checksums, content size", ["-BD", "-BX", "--content-size"]],
    ["independent 64 KiB blocks, no content checksum", ["-B4", "--no-frame-crc"]],
    ["independent 256 KiB blocks, content checksum", ["-B5"]],
    ["linked 64 KiB blocks", ["-B4", "-BD"]],
  ];
  for (const [name, flags] of variants) {
    it(`reads what the lz4 tool writes: ${name}, several blocks`, () => {
      for (const input of [
        sample(300_000),
        noise(150_000),
        concatBytes(sample(70_000), noise(70_000)),
      ]) {
        const frame = lz4File(flags, input);
        expectSame(decompressLz4Frames(frame, LIMIT), input);
      }
    });
  }

  it("reads an empty frame, and several frames in a row", () => {
    expect(decompressLz4Frames(tool("lz4", ["-c", "-q"], new Uint8Array(0)), LIMIT)).toEqual(
      new Uint8Array(0),
    );
    const a = sample(1000);
    const b = noise(500);
    const two = concatBytes(tool("lz4", ["-c", "-q"], a), tool("lz4", ["-c", "-q", "-BD"], b));
    expectSame(decompressLz4Frames(two, LIMIT), concatBytes(a, b));
  });

  it("what it writes, the lz4 tool reads (and it reads back)", () => {
    for (const input of [new Uint8Array(0), sample(5), sample(200_000), noise(100_000)]) {
      const frame = compressLz4Frame(input);
      expectSame(tool("lz4", ["-d", "-c", "-q"], frame), input);
      expectSame(decompressLz4Frames(frame, LIMIT), input);
    }
    // Compressible input compresses.
    expect(compressLz4Frame(sample(200_000)).length).toBeLessThan(100_000);
  });

  it("refuses a frame whose checksums or sizes do not match", () => {
    const input = sample(100_000);
    const withSums = lz4File(["-BX", "--content-size"], input);
    expect((withSums[4] as number) & 0x08).toBe(0x08); // the content size is there
    const flip = (at: number) => {
      const copy = withSums.slice();
      copy[at] = (copy[at] as number) ^ 0x01;
      return copy;
    };
    // Descriptor (its content size), a block's data, the content checksum.
    expect(() => decompressLz4Frames(flip(8), LIMIT)).toThrow(/descriptor checksum/);
    expect(() => decompressLz4Frames(flip(30), LIMIT)).toThrow(/block checksum/);
    expect(() => decompressLz4Frames(flip(withSums.length - 1), LIMIT)).toThrow(/content checksum/);
    // A content size that the blocks do not fill (descriptor checksum made right again).
    const short = withSums.slice();
    short[6] = (short[6] as number) + 1;
    short[14] = (xxh32(short, 4, 14) >>> 8) & 0xff;
    expect(() => decompressLz4Frames(short, LIMIT)).toThrow(/declares 100001 bytes/);
    // Truncated anywhere: an error, never a short result.
    for (const cut of [3, 10, 200, withSums.length - 3]) {
      expect(() => decompressLz4Frames(withSums.subarray(0, cut), LIMIT)).toThrow(/truncated/);
    }
  });

  it("stops a bomb at the bound: with and without a content size", () => {
    const zeros = new Uint8Array(20 << 20);
    for (const flags of [["--content-size"], ["-BD"], []]) {
      const frame = lz4File(flags, zeros);
      expect(frame.length).toBeLessThan(200_000);
      expect(() => decompressLz4Frames(frame, 1 << 20)).toThrow(/exceeds the 1048576-byte limit/);
    }
  });
});

describe("snappy", () => {
  /** A xerial stream of the given raw blocks, as the Java client's snappy stream writes. */
  const xerial = (chunks: Uint8Array[]) => {
    const header = new Uint8Array([
      0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ]);
    const parts: Uint8Array[] = [header];
    for (const chunk of chunks) {
      const block = snappy.compress(chunk);
      const length = new Uint8Array(4);
      new DataView(length.buffer).setInt32(0, block.length);
      parts.push(length, block);
    }
    return concatBytes(...parts);
  };

  it("reads xerial framing with several chunks of different sizes", () => {
    const chunks = [sample(32 * 1024), noise(1000), sample(10), sample(32 * 1024)];
    expectSame(decompressRecords(2, xerial(chunks), LIMIT), concatBytes(...chunks));
  });

  it("reads raw snappy (as librdkafka writes), and what it writes itself", () => {
    const input = sample(100_000);
    expectSame(decompressRecords(2, snappy.compress(input), LIMIT), input);
    const written = compressRecords("snappy", input);
    // Written with the xerial framing, in 32 KiB chunks, so Java consumers read it too.
    expect([...written.subarray(0, 8)]).toEqual([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0]);
    expectSame(decompressRecords(2, written, LIMIT), input);
  });

  it("refuses a block over the bound before inflating it, and a truncated stream", () => {
    const big = new Uint8Array(5 << 20);
    expect(() => decompressRecords(2, snappy.compress(big), 1 << 20)).toThrow(
      /more than 1048576 bytes/,
    );
    // Chunks that each fit but together do not.
    const chunks = Array.from({ length: 8 }, () => new Uint8Array(200_000));
    expect(() => decompressRecords(2, xerial(chunks), 1 << 20)).toThrow(/more than 1048576/);
    const whole = xerial([sample(5000)]);
    expect(() => decompressRecords(2, whole.subarray(0, whole.length - 10), LIMIT)).toThrow(
      /snappy/,
    );
  });
});

describe("zstd", () => {
  const readers = ["auto", "js"] as const;

  it("reads frames without a content size (streamed), with and without a checksum", () => {
    const input = sample(500_000);
    for (const flags of [["--no-check"], ["--check"]]) {
      // From a pipe the tool cannot know the size: the frame has none.
      const frame = tool("zstd", ["-q", "-c", ...flags], input);
      expect((frame[4] as number) >> 6).toBe(0); // no Frame_Content_Size
      for (const reader of readers) expectSame(decompressRecords(4, frame, LIMIT, reader), input);
    }
  });

  it("reads frames with a content size, and several frames in a row", () => {
    const a = sample(70_000);
    const b = noise(3_000);
    const frames = concatBytes(
      tool("zstd", ["-q", "-c", "--stream-size=70000"], a),
      tool("zstd", ["-q", "-c"], b),
    );
    for (const reader of readers) {
      expectSame(decompressRecords(4, frames, LIMIT, reader), concatBytes(a, b));
    }
  });

  it("stops a bomb at the bound in both readers", () => {
    const zeros = new Uint8Array(30 << 20);
    const streamed = tool("zstd", ["-q", "-c"], zeros);
    const sized = tool("zstd", ["-q", "-c", `--stream-size=${zeros.length}`], zeros);
    expect(streamed.length).toBeLessThan(10_000);
    for (const frame of [streamed, sized]) {
      for (const reader of readers) {
        expect(() => decompressRecords(4, frame, 1 << 20, reader)).toThrow(
          /zstd records decompress to more than 1048576 bytes/,
        );
      }
    }
  });

  it("refuses truncated data", () => {
    const frame = tool("zstd", ["-q", "-c"], sample(50_000));
    for (const reader of readers) {
      expect(() =>
        decompressRecords(4, frame.subarray(0, frame.length - 20), LIMIT, reader),
      ).toThrow(CompressionError);
    }
  });

  it("what it writes, the zstd tool reads; without node:zlib zstd it says why it cannot write", () => {
    const input = sample(100_000);
    if (zstdCompressionAvailable()) {
      expectSame(tool("zstd", ["-q", "-d", "-c"], compressRecords("zstd", input)), input);
    } else {
      expect(() => compressRecords("zstd", input)).toThrow(/zstd compression needs node:zlib zstd/);
    }
  });
});

describe("every codec", () => {
  const writable = compressionCodecs.filter((c) => c !== "zstd" || zstdCompressionAvailable());

  it("round-trips empty records and a single byte", () => {
    for (const codec of writable) {
      for (const input of [new Uint8Array(0), new Uint8Array([7])]) {
        const back = decompressRecords(codecId(codec), compressRecords(codec, input), LIMIT);
        expect([...back], codec).toEqual([...input]);
      }
    }
  });

  it("stops a gzip bomb at the bound", () => {
    const bomb = gzipSync(new Uint8Array(20 << 20));
    expect(() => decompressRecords(1, bomb, 1 << 20)).toThrow(
      /gzip records decompress to more than 1048576 bytes, the limit for one batch/,
    );
  });

  it("names codec ids Kafka does not define", () => {
    for (const id of [5, 6, 7]) {
      expect(() => decompressRecords(id, new Uint8Array(4), LIMIT)).toThrow(
        `unknown compression codec id ${id}`,
      );
    }
  });
});

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte equality without a per-element deep compare (slow on megabytes). */
function expectSame(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  expect(Buffer.compare(Buffer.from(actual), Buffer.from(expected))).toBe(0);
}
