/**
 * The embedded broker with librdkafka (Debian's kcat 1.7, librdkafka 2.0): metadata
 * listing, keyed produce with headers, and reading everything back exactly.
 * Needs `kcat` on the PATH (`apt-get install -y kcat`).
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { KafkaCluster } from "../../src/kafka/client/kafka-cluster.ts";
import { testSettings, writeTo } from "../../src/kafka/client/wire-test-kit.ts";
import { crc32cUsesWebAssembly, WASM_MIN_BYTES } from "../../src/kafka/protocol/crc32c.ts";

const KCAT_TIMEOUT_MS = 20_000;

interface KcatResult {
  stdout: string;
  stderr: string;
}

function kcat(args: string[], input?: string): Promise<KcatResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "kcat",
      args,
      { timeout: KCAT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kcat ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(input ?? "");
  });
}

interface KcatRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  headers?: string[];
}

function parseJsonLines(stdout: string): KcatRecord[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => JSON.parse(line) as KcatRecord);
}

let broker: Broker;

/** The records of `topic` from offset `from` to its current end, as `kcat -C -J` prints them. */
async function consumeToEnd(topic: string, from = "beginning"): Promise<KcatRecord[]> {
  const { stdout } = await kcat([
    "-b",
    broker.bootstrap,
    "-C",
    "-t",
    topic,
    "-J",
    "-o",
    from,
    "-e",
  ]);
  return parseJsonLines(stdout);
}

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
});

afterAll(async () => {
  await broker?.close();
});

describe("kcat against the embedded broker", () => {
  it("lists the broker as controller and every topic with its partitions", async () => {
    broker.createTopic("kcat-listed", 3);
    const { stdout } = await kcat(["-b", broker.bootstrap, "-L"]);
    expect(stdout).toContain(`broker 1 at 127.0.0.1:${broker.port} (controller)`);
    expect(stdout).toMatch(/topic "kcat-listed" with 3 partitions:/);
    for (const p of [0, 1, 2]) {
      expect(stdout).toContain(`partition ${p}, leader 1, replicas: 1, isrs: 1`);
    }
  });

  it("produces keyed lines with headers and reads them back exactly", async () => {
    const topic = "kcat-round-trip";
    broker.createTopic(topic, 1);
    const lines = ["k1:first value", "k2:second", "k3:", "k4:with:colons"];
    await kcat(
      ["-b", broker.bootstrap, "-P", "-t", topic, "-H", "a=1", "-H", "b=2", "-K:"],
      `${lines.join("\n")}\n`,
    );
    const records = await consumeToEnd(topic);
    expect(
      records.map(({ topic, partition, offset, key, payload, headers }) => ({
        topic,
        partition,
        offset,
        key,
        payload,
        headers,
      })),
    ).toEqual([
      {
        topic,
        partition: 0,
        offset: 0,
        key: "k1",
        payload: "first value",
        headers: ["a", "1", "b", "2"],
      },
      {
        topic,
        partition: 0,
        offset: 1,
        key: "k2",
        payload: "second",
        headers: ["a", "1", "b", "2"],
      },
      { topic, partition: 0, offset: 2, key: "k3", payload: "", headers: ["a", "1", "b", "2"] },
      {
        topic,
        partition: 0,
        offset: 3,
        key: "k4",
        payload: "with:colons",
        headers: ["a", "1", "b", "2"],
      },
    ]);
  });

  it("reads every partition of a multi-partition topic to its end", async () => {
    const topic = "kcat-partitioned";
    broker.createTopic(topic, 3);
    const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
    await kcat(
      ["-b", broker.bootstrap, "-P", "-t", topic, "-K:"],
      `${keys.map((k) => `${k}:value-of-${k}`).join("\n")}\n`,
    );
    const records = await consumeToEnd(topic);
    expect(records.map((r) => r.key).sort()).toEqual([...keys].sort());
    for (const r of records) expect(r.payload).toBe(`value-of-${r.key}`);
    // Offsets in each partition are dense from 0.
    for (const p of [0, 1, 2]) {
      const offsets = records.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
  });

  it("passes compressed batches through untouched (gzip, snappy, lz4, zstd)", async () => {
    for (const codec of ["gzip", "snappy", "lz4", "zstd"]) {
      const topic = `kcat-${codec}`;
      broker.createTopic(topic, 1);
      const values = Array.from({ length: 50 }, (_, i) => `${codec} value ${i} `.repeat(5));
      await kcat(
        ["-b", broker.bootstrap, "-P", "-t", topic, "-z", codec],
        `${values.join("\n")}\n`,
      );
      const records = await consumeToEnd(topic);
      expect(records.map((r) => r.payload)).toEqual(values);
      expect(records.map((r) => r.offset)).toEqual(values.map((_, i) => i));
    }
  });

  it("reads a topic as a librdkafka consumer group member", async () => {
    const topic = "kcat-group";
    broker.createTopic(topic, 2);
    const values = Array.from({ length: 10 }, (_, i) => `g${i}`);
    await kcat(["-b", broker.bootstrap, "-P", "-t", topic], `${values.join("\n")}\n`);
    const { stdout } = await kcat([
      "-b",
      broker.bootstrap,
      "-G",
      "kcat-group-reader",
      topic,
      "-J",
      "-o",
      "beginning",
      "-e",
    ]);
    expect(
      parseJsonLines(stdout)
        .map((r) => r.payload)
        .sort(),
    ).toEqual([...values].sort());
  });

  it("starts from the end with -o end and from an offset with -o N", async () => {
    const topic = "kcat-offsets";
    broker.createTopic(topic, 1);
    await kcat(["-b", broker.bootstrap, "-P", "-t", topic], "a\nb\nc\nd\n");
    const fromTwo = await consumeToEnd(topic, "2");
    expect(fromTwo.map((r) => [r.offset, r.payload])).toEqual([
      [2, "c"],
      [3, "d"],
    ]);
    const fromEnd = await consumeToEnd(topic, "end");
    expect(fromEnd).toEqual([]);
  });
});

describe("kcat checks the CRC-32C of the gateway client's batches", () => {
  // The broker checks every batch with the gateway's own CRC-32C code: only a client that
  // computes it its own way tells whether that code is right. librdkafka does when asked
  // (check.crcs); a batch that fails is reported and not delivered.
  it("reads a long batch (summed in WebAssembly) and a short one whole, with no CRC error", async () => {
    expect(crc32cUsesWebAssembly).toBe(true);
    const topic = "kcat-checksums";
    broker.createTopic(topic, 1);
    const writer = new KafkaCluster(testSettings(broker.bootstrap));
    try {
      const long = [
        "x".repeat(10_240),
        ...Array.from({ length: 40 }, (_, i) => `record ${i} `.repeat(8)),
      ];
      expect(long.join("").length).toBeGreaterThan(2 * WASM_MIN_BYTES);
      await writeTo(writer, topic, 0, long);
      await writeTo(writer, topic, 0, ["short"]);
      const { stdout, stderr } = await kcat([
        "-b",
        broker.bootstrap,
        "-C",
        "-t",
        topic,
        "-X",
        "check.crcs=true",
        "-J",
        "-o",
        "beginning",
        "-e",
      ]);
      expect(stderr).not.toMatch(/crc/i);
      expect(parseJsonLines(stdout).map((r) => r.payload)).toEqual([...long, "short"]);
    } finally {
      writer.close();
    }
  });
});
