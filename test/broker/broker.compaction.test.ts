/**
 * The embedded broker's compacted topics and ListOffsets by time, as independent clients see
 * them: kafkajs creates a topic with cleanup.policy=compact and writes several values per key,
 * kcat (librdkafka) reads it from the beginning and finds the latest value of each key at its
 * original offset, and finds offsets by timestamp the way Kafka answers them.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";

const run = promisify(execFile);

let broker: Broker;
let kafka: Kafka;

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  kafka = new Kafka({
    clientId: "compaction",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
});

afterAll(async () => {
  await broker?.close();
});

async function createTopic(topic: string, configs: Record<string, string>): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 1,
          configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

async function produce(
  topic: string,
  messages: { key: string; value: string | null; timestamp: number }[],
) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    // One batch per message: compaction works across batches and within them.
    for (const m of messages) {
      await producer.send({
        topic,
        acks: -1,
        messages: [{ key: m.key, value: m.value, timestamp: String(m.timestamp) }],
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Every record of partition 0 from the beginning, as kcat prints "offset key value". */
async function kcatRead(topic: string): Promise<string[]> {
  const { stdout } = await run(
    "kcat",
    [
      "-C",
      "-b",
      broker.bootstrap,
      "-t",
      topic,
      "-p",
      "0",
      "-o",
      "beginning",
      "-e",
      "-q",
      "-Z",
      "-f",
      "%o %k %s\\n",
    ],
    { timeout: 20_000 },
  );
  return stdout.split("\n").filter((line) => line !== "");
}

/** The offset kcat's ListOffsets by `timestamp` finds in partition 0. */
async function kcatOffsetFor(topic: string, timestamp: number): Promise<number> {
  const { stdout } = await run(
    "kcat",
    ["-Q", "-b", broker.bootstrap, "-t", `${topic}:0:${timestamp}`],
    {
      timeout: 20_000,
    },
  );
  const match = /offset (-?\d+)/.exec(stdout);
  if (!match) throw new Error(`kcat -Q printed: ${stdout}`);
  return Number(match[1]);
}

describe("compacted topics", () => {
  it("a read from the beginning sees the latest value of each key, at its own offset", async () => {
    expect(await createTopic("compacted", { "cleanup.policy": "compact,delete" })).toBe(true);
    await produce("compacted", [
      { key: "a", value: "a1", timestamp: 1_000 },
      { key: "b", value: "b1", timestamp: 1_001 },
      { key: "a", value: "a2", timestamp: 1_002 },
      { key: "c", value: "c1", timestamp: 1_003 },
      { key: "b", value: null, timestamp: 1_004 },
      { key: "a", value: "a3", timestamp: 1_005 },
    ]);
    expect(await kcatRead("compacted")).toHaveLength(6);
    broker.compact();
    // b's tombstone stays as its latest record (kcat -Z prints NULL for it).
    expect(await kcatRead("compacted")).toEqual(["3 c c1", "4 b NULL", "5 a a3"]);
    // New records go on at the same high watermark.
    await produce("compacted", [{ key: "c", value: "c2", timestamp: 1_006 }]);
    broker.compact();
    expect(await kcatRead("compacted")).toEqual(["4 b NULL", "5 a a3", "6 c c2"]);
  });

  it("a topic with the default policy keeps every record", async () => {
    expect(await createTopic("kept", {})).toBe(true);
    await produce("kept", [
      { key: "a", value: "a1", timestamp: 1_000 },
      { key: "a", value: "a2", timestamp: 1_001 },
    ]);
    broker.compact();
    expect(await kcatRead("kept")).toEqual(["0 a a1", "1 a a2"]);
  });

  it("refuses a cleanup.policy that is neither compact nor delete", async () => {
    const refused = await createTopic("bad-policy", { "cleanup.policy": "compacted" }).catch(
      (error: { errors?: { type: string; message: string }[] }) => error.errors?.[0],
    );
    expect(refused).toMatchObject({ type: "INVALID_CONFIG" });
  });
});

describe("ListOffsets by timestamp", () => {
  it("answers the first offset whose timestamp is at or after the one asked", async () => {
    expect(await createTopic("timed", {})).toBe(true);
    const producer = kafka.producer();
    await producer.connect();
    // One batch of three records: the answer lies inside it.
    await producer.send({
      topic: "timed",
      acks: -1,
      messages: [
        { key: "x", value: "1", timestamp: "10000" },
        { key: "x", value: "2", timestamp: "20000" },
        { key: "x", value: "3", timestamp: "30000" },
      ],
    });
    await producer.disconnect();
    expect(await kcatOffsetFor("timed", 5_000)).toBe(0);
    expect(await kcatOffsetFor("timed", 20_000)).toBe(1);
    expect(await kcatOffsetFor("timed", 20_001)).toBe(2);
    // Past every record: Kafka's "no such offset".
    expect(await kcatOffsetFor("timed", 30_001)).toBe(-1);
  });
});
