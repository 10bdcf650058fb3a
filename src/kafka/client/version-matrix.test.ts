/**
 * The client across the API versions it accepts: the broker advertises capped ranges (as
 * an older Kafka would), and produce, assigned reads and a consumer-group member run at
 * every version from our minimum to our maximum; an API below our minimum fails clearly.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../broker/broker.ts";
import { silentLogger } from "../../ops/logger.ts";
import { startGroupConsumer } from "../group-consumer.ts";
import { createKafka, type Kafka } from "../kafka-client.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import { KafkaProtocolError } from "../protocol/errors.ts";
import { type FetchedRecord, utf8 } from "../protocol/record-codec.ts";
import { KafkaCluster } from "./kafka-cluster.ts";
import { startPartitionReader } from "./partition-reader.ts";
import { WireConnection } from "./wire-connection.ts";
import { testSettings, waitFor } from "./wire-test-kit.ts";

/** Our accepted range per API (kafka-cluster.ts, partition-reader.ts, group-consumer.ts). */
const ranges: Record<number, readonly [number, number]> = {
  [ApiKey.Produce]: [3, 8],
  [ApiKey.Fetch]: [4, 11],
  [ApiKey.ListOffsets]: [1, 5],
  [ApiKey.Metadata]: [1, 8],
  [ApiKey.FindCoordinator]: [1, 2],
  [ApiKey.JoinGroup]: [2, 5],
  [ApiKey.SyncGroup]: [1, 3],
  [ApiKey.Heartbeat]: [0, 3],
  [ApiKey.OffsetCommit]: [2, 7],
  [ApiKey.OffsetFetch]: [1, 5],
  [ApiKey.LeaveGroup]: [0, 2],
};
const names = Object.fromEntries(Object.entries(ApiKey).map(([name, key]) => [key, name]));

/** Caps every API at `level` above our minimum (our maximum at most). */
function capsAt(level: number): Record<number, number> {
  const caps: Record<number, number> = {};
  for (const [key, [min, max]] of Object.entries(ranges))
    caps[Number(key)] = Math.min(min + level, max);
  return caps;
}

// Every request the client sends, as "api key/version".
const sent = new Set<string>();
const originalRequest = WireConnection.prototype.request;
const originalSend = WireConnection.prototype.send;

beforeAll(() => {
  WireConnection.prototype.request = function (this: WireConnection, apiKey, version, body, extra) {
    sent.add(`${apiKey}/${version}`);
    return originalRequest.call(this, apiKey, version, body, extra);
  };
  WireConnection.prototype.send = function (this: WireConnection, apiKey, version, body) {
    sent.add(`${apiKey}/${version}`);
    originalSend.call(this, apiKey, version, body);
  };
});

afterAll(() => {
  WireConnection.prototype.request = originalRequest;
  WireConnection.prototype.send = originalSend;
});

const text = (s: string) => new TextEncoder().encode(s);

/** Produce, read back, and one group member's join, commit, heartbeat and leave. */
async function scenario(broker: Broker): Promise<void> {
  const kafka: Kafka = createKafka({ servers: [broker.bootstrap] }, "matrix");
  const cluster = new KafkaCluster(testSettings(broker.bootstrap));
  const topic = "matrix";
  try {
    await cluster.produce(
      -1,
      5_000,
      new Map([
        [topic, [{ key: "k", value: text("v1"), headers: [["h", "ä"]] as [string, string][] }]],
      ]),
    );
    await cluster.produce(
      1,
      5_000,
      new Map([[topic, [{ key: "k", value: text("v2"), headers: [] }]]]),
    );
    await cluster.produce(0, 5_000, new Map([[topic, [{ key: "k", value: null, headers: [] }]]]));
    const read: FetchedRecord[] = [];
    const reader = await startPartitionReader({
      cluster,
      topics: [topic],
      start: "earliest",
      maxWaitMs: 200,
      partitionMaxBytes: 1 << 20,
      maxBytes: 1 << 20,
      onRecords: (_t, _p, records) => {
        read.push(...records);
      },
    });
    await waitFor(() => read.length === 3, "three records");
    reader.stop();
    expect(read.map((r) => (r.value ? utf8(r.value) : null))).toEqual(["v1", "v2", null]);
    expect(read[0]?.headers).toEqual([["h", "ä"]]);
    const ends = await cluster.listOffsets(topic, [0], -1);
    expect(ends).toEqual([{ topic, partition: 0, offset: 3 }]);

    const handled: bigint[] = [];
    const consumer = await startGroupConsumer(kafka, {
      groupId: "matrix-group",
      topics: [topic],
      logger: silentLogger,
      heartbeatIntervalMs: 100,
      maxWaitTimeMs: 200,
      joinTimeoutMs: 20_000,
      async onRecord(record) {
        handled.push(record.offset);
        return true;
      },
      async onRebalancing() {},
      onAssignment() {},
    });
    try {
      await waitFor(() => handled.length === 3, "the member reads three records");
      await consumer.commit([{ topic, partition: 0, offset: 3n }]);
      expect(await consumer.lag()).toEqual([{ topic, partition: 0, lag: 0 }]);
      await waitFor(
        () => [...sent].some((s) => s.startsWith(`${ApiKey.Heartbeat}/`)),
        "a heartbeat",
      );
    } finally {
      await consumer.close();
    }
  } finally {
    cluster.close();
  }
}

describe("API version matrix", () => {
  const levels = Math.max(...Object.values(ranges).map(([min, max]) => max - min));
  it.each(Array.from({ length: levels + 1 }, (_, level) => level))(
    "runs with every API capped at our minimum + %i",
    async (level) => {
      const caps = capsAt(level);
      const broker = await startBroker({ apiVersionCaps: caps });
      sent.clear();
      try {
        await scenario(broker);
      } finally {
        await broker.close();
      }
      // Each API went out at exactly the capped version, and at no other.
      for (const [key, version] of Object.entries(caps)) {
        const used = [...sent].filter((s) => s.startsWith(`${key}/`));
        expect(used, names[Number(key)]).toEqual([`${key}/${version}`]);
      }
    },
  );

  it("uses our maxima against a broker that offers more", async () => {
    const broker = await startBroker({
      // A newer broker: higher (flexible) versions on offer that this client does not speak.
      apiVersionCaps: Object.fromEntries(
        Object.entries(ranges).map(([key, [min]]) => [key, [min > 0 ? min - 1 : 0, 12] as const]),
      ),
    });
    sent.clear();
    try {
      await scenario(broker);
    } finally {
      await broker.close();
    }
    for (const [key, [, max]] of Object.entries(ranges)) {
      const used = [...sent].filter((s) => s.startsWith(`${key}/`));
      expect(used, names[Number(key)]).toEqual([`${key}/${max}`]);
    }
  });
});

describe("an API below our minimum", () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker({
      // Kafka 0.10's ranges for these three.
      apiVersionCaps: {
        [ApiKey.Produce]: [0, 2],
        [ApiKey.Fetch]: [0, 3],
        [ApiKey.JoinGroup]: [0, 1],
      },
    });
    broker.createTopic("old", 1);
  });
  afterAll(async () => {
    await broker?.close();
  });

  it("fails a produce at once, naming the API and both ranges", async () => {
    const cluster = new KafkaCluster(testSettings(broker.bootstrap));
    try {
      const started = Date.now();
      const error = await cluster
        .produce(-1, 5_000, new Map([["old", [{ key: "k", value: text("v"), headers: [] }]]]))
        .catch((e) => e);
      expect(error).toBeInstanceOf(KafkaProtocolError);
      expect((error as KafkaProtocolError).code).toBe(35);
      expect((error as Error).message).toMatch(/Produce/);
      expect((error as Error).message).toMatch(/0–2/);
      expect((error as Error).message).toMatch(/3–8/);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      cluster.close();
    }
  });

  it("reports the Fetch version problem from a reader", async () => {
    const cluster = new KafkaCluster(testSettings(broker.bootstrap));
    const problems: string[] = [];
    const reader = await startPartitionReader({
      cluster,
      topics: ["old"],
      start: "earliest",
      maxWaitMs: 200,
      partitionMaxBytes: 1 << 20,
      maxBytes: 1 << 20,
      onRecords: () => {},
      onProblem: (message, error) => problems.push(`${message}: ${(error as Error).message}`),
    });
    try {
      await waitFor(() => problems.length > 0, "a reported problem");
      expect(problems[0]).toMatch(/Fetch/);
      expect(problems[0]).toMatch(/4–11/);
    } finally {
      reader.stop();
      cluster.close();
    }
  });

  it("fails a group member's start at once, naming JoinGroup", async () => {
    const kafka = createKafka({ servers: [broker.bootstrap] }, "matrix-old");
    const started = Date.now();
    const error = await startGroupConsumer(kafka, {
      groupId: "old-group",
      topics: ["old"],
      logger: silentLogger,
      joinTimeoutMs: 20_000,
      async onRecord() {
        return true;
      },
      async onRebalancing() {},
      onAssignment() {},
    }).catch((e) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/JoinGroup/);
    expect((error as Error).message).toMatch(/2–5/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
