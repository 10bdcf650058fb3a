/**
 * Record batches of every codec decode the same under Bun and Deno as under Node (where the
 * unit suites run): codec-check.ts decodes batches kcat wrote (none, gzip, snappy, lz4, zstd;
 * zstd also through the pure-JS reader) and encodes a batch in every codec the runtime can
 * write, decoding it back. Bun and Deno have node:zlib zstd, so they write zstd too.
 */
import { describe, expect, test } from "vitest";
import { bin, run } from "../support/gateway-process.ts";

interface CheckResult {
  check: "kcat" | "encode";
  codec: string;
  reader?: string;
  next?: number;
  undecodable?: string;
  unavailable?: boolean;
  records?: { key: string | null; value: string | null; headers: [string, string][] }[];
}

const commands = {
  bun: [bin("bun"), ["test/runtime/codec-check.ts"]],
  deno: [bin("deno"), ["run", "-A", "--sloppy-imports", "test/runtime/codec-check.ts"]],
} as const;

describe("codecs on every runtime", () => {
  test.each(["bun", "deno"] as const)("codecs.%s", { timeout: 60_000 }, async (runtime) => {
    const [command, args] = commands[runtime];
    const result = await run(command, [...args], { timeoutMs: 50_000 });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.trim().split("\n").at(-1) as string) as {
      runtime: string;
      zstdWrite: boolean;
      results: CheckResult[];
    };
    expect(report.runtime).toBe(runtime);
    expect(report.zstdWrite).toBe(true);
    const seen = report.results.map((r) => `${r.check} ${r.codec} ${r.reader ?? ""}`.trim());
    expect(seen).toEqual([
      "kcat none auto",
      "kcat gzip auto",
      "kcat snappy auto",
      "kcat lz4 auto",
      "kcat zstd auto",
      "kcat zstd js",
      "encode none auto",
      "encode gzip auto",
      "encode snappy auto",
      "encode lz4 auto",
      "encode zstd auto",
    ]);
    for (const r of report.results) {
      expect(r.undecodable, `${r.check} ${r.codec}`).toBeUndefined();
      expect(r.next).toBe(3);
      expect(r.records).toEqual(
        [0, 1, 2].map((i) => ({
          key: `k${i}`,
          value: `${r.codec} record ${i} ${"kafka ".repeat(12)}`,
          headers: [["h", "v"]],
        })),
      );
    }
  });
});
