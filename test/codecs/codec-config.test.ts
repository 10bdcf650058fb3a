/**
 * The kafka client's extension options: `compression` (the codec of the batches the
 * gateway produces) and `undecodable-batches` (fail | skip), from zilla.yaml and from the
 * command line's overrides; zstd compression is refused at validation on a runtime without
 * node:zlib zstd (Node 20 here), with the reason.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { formatConfigErrors } from "../../src/config/format-pipelines.ts";
import { type LoadConfigOptions, parseConfig } from "../../src/config/load-config.ts";
import { zstdCompressionAvailable } from "../../src/kafka/protocol/compression.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

const exampleDir = fileURLToPath(new URL("../../examples/grpc.kafka.proxy/", import.meta.url));
const exampleText = readFileSync(join(exampleDir, "zilla.yaml"), "utf8");
const env = {
  KEYSTORE_PASSWORD: "zilla-example",
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};

let registry: ServiceRegistry;
beforeAll(async () => {
  registry = await loadServiceRegistry();
});

/** The example with `lines` added under the kafka client's options. */
function withKafkaOptions(lines: string): string {
  const anchor = "        - kafka:29092\n";
  expect(exampleText).toContain(anchor);
  return exampleText.replace(anchor, `${anchor}${lines}`);
}

async function parse(text: string, overrides: Partial<LoadConfigOptions> = {}) {
  return parseConfig(text, exampleDir, { registry, env, ...overrides });
}

describe("kafka client compression and undecodable-batches options", () => {
  it("default to none and fail (absent from the config)", async () => {
    const result = await parse(exampleText);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.kafka.compression).toBeUndefined();
    expect(result.config.kafka.undecodableBatches).toBeUndefined();
  });

  it("read from zilla.yaml", async () => {
    const result = await parse(
      withKafkaOptions("      compression: lz4\n      undecodable-batches: skip\n"),
    );
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.kafka).toMatchObject({ compression: "lz4", undecodableBatches: "skip" });
  });

  it("replaced by the command line's overrides", async () => {
    const result = await parse(withKafkaOptions("      compression: lz4\n"), {
      kafkaCompression: "snappy",
      kafkaUndecodableBatches: "skip",
    });
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.kafka).toMatchObject({
      compression: "snappy",
      undecodableBatches: "skip",
    });
  });

  it("refuse unknown values, naming the choices", async () => {
    const result = await parse(
      withKafkaOptions("      compression: brotli\n      undecodable-batches: ignore\n"),
    );
    expect(result.ok).toBe(false);
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toMatch(/compression.*none, gzip, snappy, lz4, zstd/);
    expect(text).toMatch(/undecodable-batches.*fail, skip/);
  });

  it("zstd: accepted where node:zlib has zstd, else refused with the reason", async () => {
    const result = await parse(withKafkaOptions("      compression: zstd\n"));
    if (zstdCompressionAvailable()) {
      expect(result.ok).toBe(true);
    } else {
      expect(result.ok).toBe(false);
      const text = result.ok ? "" : formatConfigErrors(result.errors);
      expect(text).toMatch(
        /options\.compression.*zstd compression needs a runtime whose node:zlib has zstd \(Bun, Deno, Node 22\.15\+\); this is Node 20/,
      );
    }
  });
});
