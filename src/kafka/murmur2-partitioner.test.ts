import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { createPartitioner } from "../../test/support/kafkajs.ts";
import { murmur2 } from "./murmur2-partitioner.ts";

// kafkajs' own murmur2 (the one its DefaultPartitioner uses) as the reference.
const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require("kafkajs/src/producer/partitioners/default/murmur2.js") as (
  key: Buffer | string,
) => number;

describe("murmur2", () => {
  it("matches kafkajs' murmur2 on keys of every tail length and on multibyte text", () => {
    const keys: Buffer[] = [Buffer.alloc(0)];
    for (let length = 1; length <= 64; length++) {
      for (let n = 0; n < 20; n++) keys.push(randomBytes(length));
    }
    for (const text of ["a", "ab", "abc", "abcd", "zilla", "héllo wörld ✓", "日本語のキー"]) {
      keys.push(Buffer.from(text));
    }
    for (const key of keys) expect(murmur2(key), key.toString("hex")).toBe(kafkajsMurmur2(key));
  });

  it("gives Kafka's partitions for correlation-id keys", () => {
    const partitioner = createPartitioner();
    const partitionMetadata = [0, 1, 2].map((partitionId) => ({
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
      partitionErrorCode: 0,
    }));
    const key = "0f8fad5b-d9cb-469f-a165-70867728950e-46ae5cdb4b46cbb367cbad0bea36a56f";
    const expected = (kafkajsMurmur2(key) & 0x7fffffff) % 3;
    expect(partitioner({ topic: "t", partitionMetadata, message: { key, value: null } })).toBe(
      expected,
    );
    // An explicit partition wins; keyless records go round-robin.
    expect(
      partitioner({ topic: "t", partitionMetadata, message: { key, value: null, partition: 2 } }),
    ).toBe(2);
    const keyless = new Set(
      [0, 1, 2].map(() => partitioner({ topic: "t", partitionMetadata, message: { value: "v" } })),
    );
    expect(keyless).toEqual(new Set([0, 1, 2]));
  });
});
