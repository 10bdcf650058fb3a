import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { createKafka, type Kafka } from "../kafka/kafka-client.ts";
import type { OutgoingRecord } from "../kafka/protocol/record-codec.ts";
import { chunkEntries, startChangelogWriter } from "./changelog-writer.ts";

const item = (partition: number, bytes: number, topic = "c") => ({
  topic,
  record: { key: "k", value: null, headers: [], partition } as OutgoingRecord,
  bytes,
});

describe("chunkEntries", () => {
  it("keeps one turn in one request while every partition's batch stays under the limit", () => {
    const items = [item(0, 400), item(1, 400), item(0, 400), item(1, 100)];
    expect(chunkEntries(items, 1000)).toEqual([items]);
  });

  it("starts another request where a partition's batch would pass the limit", () => {
    const items = [item(0, 600), item(1, 600), item(0, 600), item(0, 300)];
    const chunks = chunkEntries(items, 1000);
    expect(chunks).toEqual([
      [items[0], items[1]],
      [items[2], items[3]],
    ]);
  });

  it("sends a large entry alone", () => {
    const big = item(0, 300 * 1024);
    const items = [item(0, 10), big, item(0, 10)];
    expect(chunkEntries(items)).toEqual([[big], [items[0], items[2]]]);
  });
});

describe("startChangelogWriter", () => {
  let broker: Broker;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    kafka = createKafka({ servers: [broker.bootstrap] }, "writer-test");
  });

  afterAll(async () => {
    await broker?.close();
  });

  it("writes each entry to the partition it names, keyed by the call", async () => {
    broker.createTopic("writer-changelog", 3);
    const writer = await startChangelogWriter(kafka, { acks: "in_sync_replicas" });
    await Promise.all(
      [0, 1, 2, 2].map((partition, i) =>
        writer.write("writer-changelog", partition, `call-${i}`, Uint8Array.of(i)),
      ),
    );
    await writer.close();
    const admin = kafkajsFor(kafka).admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets("writer-changelog");
    await admin.disconnect();
    expect(ends.map((p) => [p.partition, p.offset]).sort()).toEqual([
      [0, "1"],
      [1, "1"],
      [2, "2"],
    ]);
  });

  it("refuses a partition the topic does not have, naming it", async () => {
    broker.createTopic("writer-small", 1);
    const writer = await startChangelogWriter(kafka, { acks: "leader_only" });
    await expect(writer.write("writer-small", 3, "call", Uint8Array.of(1))).rejects.toThrow(
      /writer-small names partition 3, which the topic's 1 partitions do not have/,
    );
    await writer.close();
  });
});
