/**
 * Every advertised version of every core API, over a real socket: requests encoded and
 * responses decoded by kafkajs's own protocol modules where kafkajs has that version, and
 * by hand (checking that the response is consumed exactly) where only librdkafka or newer
 * clients use it.
 */
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { encodeRecordBatch } from "../../kafka/protocol/record-batch.ts";
import type { Reader, Writer } from "../../kafka/protocol/wire.ts";
import { type Broker, startBroker } from "../broker.ts";
import { WireClient } from "../wire-client.ts";

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: kafkajs's protocol modules are untyped JavaScript.
type Decoded = any;
type KafkajsRequest = { apiKey: number; encode(): Promise<{ buffer: Buffer }> };

let broker: Broker;
let client: WireClient;

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: 2 });
  client = await WireClient.connect(broker.host, broker.port);
});

afterAll(async () => {
  await client?.close();
  await broker?.close();
});

function remainingBuffer(r: Reader): Buffer {
  return Buffer.from(r.buf.buffer, r.buf.byteOffset + r.offset, r.remaining);
}

/** Sends kafkajs's `api/vN` request over the wire and decodes the answer with its decoder. */
async function viaKafkajs(api: string, version: number, args: unknown): Promise<Decoded> {
  const request: KafkajsRequest = require(
    `kafkajs/src/protocol/requests/${api}/v${version}/request`,
  )(args);
  const body = new Uint8Array((await request.encode()).buffer);
  const reader = await client.request(request.apiKey, version, (w) => w.raw(body));
  const response = require(`kafkajs/src/protocol/requests/${api}/v${version}/response`);
  return response.decode(remainingBuffer(reader));
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("core APIs through kafkajs's codecs", () => {
  it("ApiVersions v0-v2", async () => {
    for (const v of range(0, 2)) {
      const res = await viaKafkajs("apiVersions", v, {});
      expect(res.errorCode).toBe(0);
      expect(res.apiVersions).toEqual(
        expect.arrayContaining([{ apiKey: ApiKey.Metadata, minVersion: 0, maxVersion: 8 }]),
      );
    }
  });

  it("Metadata v0-v6, CreateTopics v0-v3, DeleteTopics v0-v1", async () => {
    for (const v of range(0, 3)) {
      const res = await viaKafkajs("createTopics", v, {
        topics: [{ topic: `created-v${v}`, numPartitions: 3, replicationFactor: 1 }],
        validateOnly: false,
        timeout: 1000,
      });
      expect(res.topicErrors).toEqual([
        expect.objectContaining({ topic: `created-v${v}`, errorCode: 0 }),
      ]);
    }
    const again = await viaKafkajs("createTopics", 3, {
      topics: [{ topic: "created-v0", numPartitions: 1 }],
      validateOnly: true,
      timeout: 1000,
    });
    expect(again.topicErrors[0].errorCode).toBe(ErrorCode.TOPIC_ALREADY_EXISTS);
    const dry = await viaKafkajs("createTopics", 3, {
      topics: [{ topic: "dry-run", numPartitions: 1 }],
      validateOnly: true,
      timeout: 1000,
    });
    expect(dry.topicErrors[0].errorCode).toBe(0);

    for (const v of range(0, 6)) {
      const res = await viaKafkajs("metadata", v, { topics: ["created-v1", `auto-v${v}`] });
      expect(res.brokers).toEqual([
        expect.objectContaining({ nodeId: 1, host: "127.0.0.1", port: broker.port }),
      ]);
      if (v >= 1) expect(res.controllerId).toBe(1);
      if (v >= 2) expect(res.clusterId).toMatch(/^[A-Za-z0-9_-]{22}$/);
      const [created, auto] = res.topicMetadata;
      expect(created).toMatchObject({ topicErrorCode: 0, topic: "created-v1" });
      expect(created.partitionMetadata).toHaveLength(3);
      expect(created.partitionMetadata[2]).toMatchObject({
        partitionErrorCode: 0,
        partitionId: 2,
        leader: 1,
        replicas: [1],
        isr: [1],
      });
      // Auto-created with the broker's default partition count.
      expect(auto).toMatchObject({ topicErrorCode: 0, topic: `auto-v${v}` });
      expect(auto.partitionMetadata).toHaveLength(2);
    }
    const noAuto = await viaKafkajs("metadata", 6, {
      topics: ["not-created"],
      allowAutoTopicCreation: false,
    });
    expect(noAuto.topicMetadata[0].topicErrorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    const all = await viaKafkajs("metadata", 0, { topics: [] });
    const allNames = all.topicMetadata.map((t: Decoded) => t.topic);
    expect(allNames).toEqual(expect.arrayContaining(["created-v0", "created-v3", "auto-v0"]));
    expect(allNames).not.toContain("dry-run");

    for (const v of range(0, 1)) {
      const res = await viaKafkajs("deleteTopics", v, {
        topics: [`created-v${v}`, "never-there"],
        timeout: 1000,
      });
      expect(res.topicErrors).toEqual([
        { topic: `created-v${v}`, errorCode: 0 },
        { topic: "never-there", errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION },
      ]);
    }
  });

  it("InitProducerId v0-v1, Produce v3-v7 (idempotent), Fetch v4-v11, ListOffsets v1-v3", async () => {
    broker.createTopic("data", 1);
    let expectedOffset = 0;
    for (const v of range(3, 7)) {
      const init = await viaKafkajs("initProducerId", v % 2, {
        transactionalId: null,
        transactionTimeout: 1000,
      });
      expect(init).toMatchObject({ errorCode: 0, producerEpoch: 0 });
      const produce = () =>
        viaKafkajs("produce", v, {
          acks: -1,
          timeout: 1000,
          producerId: init.producerId,
          producerEpoch: 0,
          topicData: [
            {
              topic: "data",
              partitions: [
                {
                  partition: 0,
                  firstSequence: 0,
                  messages: [
                    { key: "k", value: `v${v}`, headers: { h: "x" }, timestamp: 1000 * v },
                    { key: null, value: null, timestamp: 1000 * v },
                  ],
                },
              ],
            },
          ],
        });
      const first = await produce();
      const retried = await produce();
      for (const res of [first, retried]) {
        expect(res.topics[0].partitions[0]).toMatchObject({
          partition: 0,
          errorCode: 0,
          baseOffset: String(expectedOffset),
        });
      }
      expectedOffset += 2;
    }

    for (const v of range(4, 11)) {
      const res = await viaKafkajs("fetch", v, {
        replicaId: -1,
        maxWaitTime: 0,
        minBytes: 1,
        maxBytes: 1 << 20,
        topics: [
          {
            topic: "data",
            partitions: [
              { partition: 0, fetchOffset: "3", logStartOffset: "0", maxBytes: 1 << 20 },
            ],
          },
        ],
      });
      const partition = res.responses[0].partitions[0];
      expect(partition).toMatchObject({ errorCode: 0, highWatermark: String(expectedOffset) });
      // The batch holding offset 3 (offsets 2-3) comes whole; the client skips offset 2.
      const offsets = partition.messages.map((m: Decoded) => m.offset);
      expect(offsets).toEqual(range(2, expectedOffset - 1).map(String));
      const first = partition.messages[0];
      expect(first.key.toString()).toBe("k");
      expect(first.value.toString()).toBe("v4");
      expect(first.headers.h.toString()).toBe("x");
      expect(partition.messages[1].value).toBeNull();
    }

    for (const v of range(1, 3)) {
      const res = await viaKafkajs("listOffsets", v, {
        replicaId: -1,
        isolationLevel: 1,
        topics: [
          {
            topic: "data",
            partitions: [
              { partition: 0, timestamp: -2 },
              { partition: 0, timestamp: -1 },
              { partition: 0, timestamp: 5500 },
            ],
          },
        ],
      });
      const partitions = res.responses[0].partitions;
      expect(partitions.map((p: Decoded) => [p.errorCode, p.offset])).toEqual([
        [0, "0"],
        [0, String(expectedOffset)],
        [0, "6"], // the first batch with a timestamp at or after 5500 is v6's
      ]);
    }
  });
});

describe("versions only librdkafka or newer clients use, read by hand", () => {
  it("Metadata v7-v8", async () => {
    broker.createTopic("m", 2);
    for (const v of [7, 8]) {
      const r = await client.request(ApiKey.Metadata, v, (w: Writer) => {
        w.int32(1).string("m").bool(true).bool(false).bool(false);
      });
      expect(r.int32()).toBe(0);
      expect(r.array((b) => [b.int32(), b.string(), b.int32(), b.nullableString()])).toEqual([
        [1, "127.0.0.1", broker.port, null],
      ]);
      expect(r.nullableString()).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(r.int32()).toBe(1);
      const topics = r.array((t) => ({
        errorCode: t.int16(),
        name: t.string(),
        internal: t.bool(),
        partitions: t.array((p) => ({
          errorCode: p.int16(),
          index: p.int32(),
          leader: p.int32(),
          epoch: p.int32(),
          replicas: p.array((x) => x.int32()),
          isr: p.array((x) => x.int32()),
          offline: p.array((x) => x.int32()),
        })),
        operations: v >= 8 ? t.int32() : undefined,
      }));
      if (v >= 8) r.int32();
      expect(r.remaining).toBe(0);
      expect(topics).toHaveLength(1);
      expect(topics[0]?.partitions[1]).toEqual({
        errorCode: 0,
        index: 1,
        leader: 1,
        epoch: 0,
        replicas: [1],
        isr: [1],
        offline: [],
      });
    }
  });

  it("CreateTopics v4 with default partitions, DeleteTopics v2-v3", async () => {
    const r = await client.request(ApiKey.CreateTopics, 4, (w: Writer) => {
      w.int32(1).string("v4-default").int32(-1).int16(-1).int32(0).int32(0);
      w.int32(1000).bool(false);
    });
    expect(r.int32()).toBe(0);
    expect(r.array((t) => [t.string(), t.int16(), t.nullableString()])).toEqual([
      ["v4-default", 0, null],
    ]);
    expect(r.remaining).toBe(0);
    for (const v of [2, 3]) {
      const d = await client.request(ApiKey.DeleteTopics, v, (w: Writer) => {
        w.int32(1)
          .string(v === 2 ? "v4-default" : "gone")
          .int32(1000);
      });
      expect(d.int32()).toBe(0);
      expect(d.array((t) => [t.string(), t.int16()])).toEqual([
        [v === 2 ? "v4-default" : "gone", v === 2 ? 0 : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
      ]);
      expect(d.remaining).toBe(0);
    }
  });

  it("Produce v8 and ListOffsets v4-v5", async () => {
    broker.createTopic("p8", 1);
    const batch = encodeRecordBatch([{ value: new Uint8Array([1]), timestamp: 42 }]);
    const r = await client.request(ApiKey.Produce, 8, (w: Writer) => {
      w.nullableString(null).int16(1).int32(1000);
      w.int32(1).string("p8").int32(1).int32(0).bytes(batch);
    });
    const partitions = r.array((t) => {
      t.string();
      return t.array((p) => ({
        index: p.int32(),
        errorCode: p.int16(),
        baseOffset: p.int64n(),
        appendTime: p.int64n(),
        logStart: p.int64n(),
        recordErrors: p.array((e) => [e.int32(), e.nullableString()]),
        message: p.nullableString(),
      }));
    });
    expect(r.int32()).toBe(0);
    expect(r.remaining).toBe(0);
    expect(partitions).toEqual([
      [
        {
          index: 0,
          errorCode: 0,
          baseOffset: 0,
          appendTime: -1,
          logStart: 0,
          recordErrors: [],
          message: null,
        },
      ],
    ]);
    for (const v of [4, 5]) {
      const l = await client.request(ApiKey.ListOffsets, v, (w: Writer) => {
        w.int32(-1).int8(0).int32(1).string("p8").int32(1).int32(0).int32(-1).int64(40);
      });
      expect(l.int32()).toBe(0);
      const answer = l.array((t) => {
        t.string();
        return t.array((p) => [p.int32(), p.int16(), p.int64n(), p.int64n(), p.int32()]);
      });
      expect(answer).toEqual([[[0, 0, 42, 0, 0]]]);
      expect(l.remaining).toBe(0);
    }
  });

  it("ApiVersions v3 with the flexible encoding and a v0 response header", async () => {
    const r = await client.request(
      ApiKey.ApiVersions,
      3,
      (w: Writer) => {
        w.compactString("librdkafka").compactString("2.0.2").taggedFields();
      },
      { flexibleRequest: true },
    );
    expect(r.int16()).toBe(0);
    const apis = r.compactArray((a) => {
      const entry = [a.int16(), a.int16(), a.int16()];
      a.taggedFields();
      return entry;
    });
    expect(r.int32()).toBe(0);
    r.taggedFields();
    expect(r.remaining).toBe(0);
    expect(apis).toEqual(
      expect.arrayContaining([
        [ApiKey.Produce, 3, 8],
        [ApiKey.Fetch, 4, 11],
        [ApiKey.ListOffsets, 1, 5],
        [ApiKey.Metadata, 0, 8],
        [ApiKey.CreateTopics, 0, 4],
        [ApiKey.DeleteTopics, 0, 3],
        [ApiKey.InitProducerId, 0, 1],
        [ApiKey.ApiVersions, 0, 3],
      ]),
    );
  });
});
