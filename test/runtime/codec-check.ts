/**
 * Decodes and encodes record batches of every codec on whatever runtime runs it (Bun and Deno
 * in codec-runtimes.test.ts; Node runs the same code in the unit suites), printing one JSON
 * line per check. The batches below were written by kcat (librdkafka 2.0) to the embedded
 * broker: three records "<codec> record <i> kafka kafka ...", keys k0..k2, header h=v.
 */
import {
  compressionCodecs,
  zstdCompressionAvailable,
} from "../../src/kafka/protocol/compression.ts";
import {
  decodeBatches,
  encodeBatch,
  type FetchedRecord,
} from "../../src/kafka/protocol/record-codec.ts";

const kcatBatches: Record<string, string> = {
  none: "AAAAAAAAAAAAAAFgAAAAAAJXQnp9AAAAAAACAAABokXXEDYAAAGiRdcQNv//////////////////AAAAA8YBAAAABGswrAFub25lIHJlY29yZCAwIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIGthZmthIAICaAJ2xgEAAAIEazGsAW5vbmUgcmVjb3JkIDEga2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2Ega2Fma2EgAgJoAnbGAQAABARrMqwBbm9uZSByZWNvcmQgMiBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSBrYWZrYSACAmgCdg==",
  gzip: "AAAAAAAAAAAAAACAAAAAAAK6k3RnAAEAAAACAAABokXXEGIAAAGiRdcQYv//////////////////AAAAAx+LCAAAAAAAAAM7xsjAwMCSbbCGMb0qs0ChKDU5vyhFwUAhOzEtO5EKJBNTBlPZMaAlTCzZhqiWGFLfEhaWbCNUS4yoawkA3uTEVC8BAAA=",
  snappy:
    "AAAAAAAAAAAAAACKAAAAAAJRN/5mAAIAAAACAAABokXXEIAAAAGiRdcQgP//////////////////AAAAA7UCeMoBAAAABGswsAFzbmFwcHkgcmVjb3JkIDAga2Fma2HuBgANBhACAmgCdgFnDAIEazE+ZwAAMe5hAA1hCakVZwwEBGsyPmcAADINJQkr7gYAEAICaAJ2",
  lz4: "AAAAAAAAAAAAAACNAAAAAAKVpjEyAAMAAAACAAABokXXEJ0AAAGiRdcQnf//////////////////AAAAAwQiTRhgQIJNAAAA/w3EAQAAAARrMKoBbHo0IHJlY29yZCAwIGthZmthBgAwUAICaAJ2ZABJAgRrMWQAHzFeADACpgAFZABJBARrMmQAHzJkADZQAgJoAnYAAAAA",
  zstd: "AAAAAAAAAAAAAAB7AAAAAAJoOmnAAAQAAAACAAABokXXELgAAAGiRdcQuP//////////////////AAAAAyi1L/0AWA0CAAQDxgEAAAAEazCsAXpzdGQgcmVjb3JkIDAga2Fma2ECAmgCdsYBAAACBGsxMQQEazIyBQALUAFkekAvNMg/CFqc",
};

const text = (bytes: Uint8Array | null) =>
  bytes === null ? null : new TextDecoder().decode(bytes);

function decode(bytes: Uint8Array, zstdReader: "auto" | "js" = "auto") {
  const records: FetchedRecord[] = [];
  const result = decodeBatches(bytes, 0, (r) => records.push(r), { zstdReader });
  return {
    next: result.next,
    undecodable: result.undecodable?.error.message,
    records: records.map((r) => ({ key: text(r.key), value: text(r.value), headers: r.headers })),
  };
}

const results: unknown[] = [];
for (const [codec, base64] of Object.entries(kcatBatches)) {
  const bytes = new Uint8Array(Buffer.from(base64, "base64"));
  results.push({ check: "kcat", codec, reader: "auto", ...decode(bytes) });
  if (codec === "zstd")
    results.push({ check: "kcat", codec, reader: "js", ...decode(bytes, "js") });
}
for (const codec of compressionCodecs) {
  if (codec === "zstd" && !zstdCompressionAvailable()) {
    results.push({ check: "encode", codec, unavailable: true });
    continue;
  }
  const records = [0, 1, 2].map((i) => ({
    key: `k${i}`,
    value: new TextEncoder().encode(`${codec} record ${i} ${"kafka ".repeat(12)}`),
    headers: [["h", "v"]] as [string, string][],
  }));
  results.push({
    check: "encode",
    codec,
    reader: "auto",
    ...decode(encodeBatch(records, 1, codec)),
  });
}
const runtime =
  "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : `node ${process.versions.node}`;
console.log(JSON.stringify({ runtime, zstdWrite: zstdCompressionAvailable(), results }));
