/**
 * Decode (and encode) cost of record batches per codec, as ratios against uncompressed in the
 * same run: `npx bun bench/codecs.ts [--rounds 5] [--window-ms 300]` (under the bench lock).
 *
 * Two batch shapes: 100 request-like records (a correlation id key, the contract's headers, a
 * 100-byte protobuf value: the gateway's own traffic) and 10 records of 10 KiB JSON text.
 * Each round measures every codec for one window, codecs interleaved; the median round counts.
 * zstd is decoded by node:zlib where the runtime has it, and by the pure-JS reader (fzstd,
 * the Node 20 path) as its own row.
 */
import {
  type CompressionCodec,
  compressionCodecs,
  type ZstdReader,
  zstdCompressionAvailable,
} from "../src/kafka/protocol/compression.ts";
import {
  decodeBatches,
  encodeBatch,
  type OutgoingRecord,
} from "../src/kafka/protocol/record-codec.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const rounds = option("--rounds", 5);
const windowMs = option("--window-ms", 300);

function requestRecords(): OutgoingRecord[] {
  return Array.from({ length: 100 }, (_, i) => {
    const id = `${i.toString(16).padStart(8, "0")}-46ae5cdb4b46cbb367cbad0bea36a56f`;
    const value = new Uint8Array(100);
    value[0] = 0x0a;
    value[1] = 98;
    for (let b = 2; b < 100; b++) value[b] = 97 + ((b * 7 + i) % 26);
    return {
      key: id,
      value,
      headers: [
        ["zilla:service", "grpc.examples.echo.Echo"],
        ["zilla:method", "UnaryEcho"],
        ["zilla:reply-to", "echo-responses"],
        ["zilla:correlation-id", id],
        ["zilla:timeout", "30000"],
      ],
    };
  });
}

function jsonRecords(): OutgoingRecord[] {
  const encoder = new TextEncoder();
  return Array.from({ length: 10 }, (_, i) => {
    const items: string[] = [];
    for (let n = 0; items.join(",").length < 10_240; n++) {
      items.push(`{"order":${i * 1000 + n},"sku":"SKU-${(n * 7919) % 10007}","qty":${n % 9}}`);
    }
    return { key: `order-${i}`, value: encoder.encode(`[${items.join(",")}]`), headers: [] };
  });
}

interface Row {
  name: string;
  codec: CompressionCodec;
  reader: ZstdReader;
}

const rows: Row[] = compressionCodecs
  .filter((codec) => codec !== "zstd" || zstdCompressionAvailable())
  .map((codec): Row => ({ name: codec, codec, reader: "auto" }));
// Reading zstd needs no node:zlib zstd: the pure-JS reader decodes what zlib wrote.
if (zstdCompressionAvailable()) rows.push({ name: "zstd (pure JS)", codec: "zstd", reader: "js" });

/** Nanoseconds per call of `fn`, over one window. */
function timePerCall(fn: () => void): number {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < windowMs) {
    for (let i = 0; i < 16; i++) fn();
    calls += 16;
    now = performance.now();
  }
  return ((now - start) * 1e6) / calls;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

function measure(shape: string, records: OutgoingRecord[]): void {
  const batches = new Map(rows.map((row) => [row.name, encodeBatch(records, 1, row.codec)]));
  const decodeNs = new Map<string, number[]>(rows.map((row) => [row.name, []]));
  const encodeNs = new Map<string, number[]>(rows.map((row) => [row.name, []]));
  // Warm every path before measuring.
  for (const row of rows) {
    const batch = batches.get(row.name) as Uint8Array;
    for (let i = 0; i < 50; i++) decodeBatches(batch, 0, () => {}, { zstdReader: row.reader });
  }
  for (let round = 0; round < rounds; round++) {
    for (const row of rows) {
      const batch = batches.get(row.name) as Uint8Array;
      let count = 0;
      decodeNs.get(row.name)?.push(
        timePerCall(() => {
          decodeBatches(batch, 0, () => count++, { zstdReader: row.reader });
        }),
      );
      if (row.reader === "auto") {
        encodeNs.get(row.name)?.push(timePerCall(() => encodeBatch(records, 1, row.codec)));
      }
    }
  }
  const noneDecode = median(decodeNs.get("none") as number[]);
  const noneEncode = median(encodeNs.get("none") as number[]);
  const noneBytes = (batches.get("none") as Uint8Array).length;
  console.log(`\n${shape}: ${records.length} records, ${noneBytes} bytes uncompressed`);
  console.log(
    "| codec | batch bytes | decode µs/batch | decode × none | encode µs/batch | encode × none |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const row of rows) {
    const decode = median(decodeNs.get(row.name) as number[]);
    const encodes = encodeNs.get(row.name) as number[];
    const encode = encodes.length > 0 ? median(encodes) : undefined;
    const bytes = (batches.get(row.name) as Uint8Array).length;
    console.log(
      `| ${row.name} | ${bytes} | ${(decode / 1000).toFixed(1)} | ${(decode / noneDecode).toFixed(2)} | ${encode === undefined ? "–" : (encode / 1000).toFixed(1)} | ${encode === undefined ? "–" : (encode / noneEncode).toFixed(2)} |`,
    );
  }
}

const runtime =
  "Bun" in globalThis ? `Bun ${process.versions.bun}` : `Node ${process.versions.node}`;
console.log(`${runtime}; ${rounds} rounds of ${windowMs} ms per codec, interleaved; medians`);
measure("request-like records", requestRecords());
measure("10 KiB JSON records", jsonRecords());
