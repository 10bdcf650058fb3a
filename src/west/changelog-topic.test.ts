import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../broker/broker.ts";
import { KafkaCluster } from "../kafka/client/kafka-cluster.ts";
import { createKafka } from "../kafka/kafka-client.ts";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { silentLogger } from "../ops/logger.ts";
import {
  changelogConfigs,
  defaultChangelogTopic,
  ensureChangelogTopics,
} from "./changelog-topic.ts";

describe("defaultChangelogTopic", () => {
  it("derives a legal name from namespace, binding and request topic", () => {
    expect(defaultChangelogTopic("example", "west_kafka_grpc_remote_server", "echo-requests")).toBe(
      "zilla-example-west_kafka_grpc_remote_server-echo-requests-changelog",
    );
    expect(defaultChangelogTopic("my ns", "b:1", "t/x")).toBe("zilla-my_ns-b_1-t_x-changelog");
  });

  it("keeps a long name within Kafka's 249 characters, distinct by a hash", () => {
    const a = defaultChangelogTopic("n", "b", `${"t".repeat(300)}a`);
    const b = defaultChangelogTopic("n", "b", `${"t".repeat(300)}b`);
    expect(a).toHaveLength(249);
    expect(b).toHaveLength(249);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[a-zA-Z0-9._-]+$/);
  });
});

describe("changelogConfigs", () => {
  it("compacts and deletes, keeps entries past the window, rolls segments within it", () => {
    expect(changelogConfigs(300_000, 512 * 1024)).toEqual({
      "cleanup.policy": "compact,delete",
      "retention.ms": String(300_000 + 600_000),
      "segment.ms": "300000",
    });
    const long = changelogConfigs(24 * 3_600_000, 2 * 1024 * 1024);
    expect(long["retention.ms"]).toBe(String(48 * 3_600_000));
    expect(long["segment.ms"]).toBe("3600000");
    // A reply kept inline must fit one batch.
    expect(long["max.message.bytes"]).toBe(String(2 * 1024 * 1024 + 64 * 1024));
  });
});

describe("ensureChangelogTopics", () => {
  let broker: Broker;
  let cluster: KafkaCluster;

  beforeAll(async () => {
    broker = await startBroker({ port: 0, defaultPartitions: 1 });
    cluster = new KafkaCluster(createKafka({ servers: [broker.bootstrap] }, "ensure-test").wire);
  });

  afterAll(async () => {
    cluster?.close();
    await broker?.close();
  });

  const ensure = (requestTopic: string, changelog: string) =>
    ensureChangelogTopics({
      cluster,
      topics: new Map([[requestTopic, changelog]]),
      windowMs: 300_000,
      replayMaxBytes: 512 * 1024,
      binding: "west_b",
      logger: silentLogger,
    });

  it("creates a missing changelog with the request topic's partitions", async () => {
    broker.createTopic("req-a", 3);
    expect(await ensure("req-a", "req-a-changelog")).toEqual([
      { requestTopic: "req-a", topic: "req-a-changelog", partitions: 3 },
    ]);
    expect(await cluster.partitionCount("req-a-changelog")).toBe(3);
    // Already there: left as it is.
    expect((await ensure("req-a", "req-a-changelog"))[0]?.partitions).toBe(3);
  });

  it("accepts a changelog with more partitions, refuses one with fewer", async () => {
    broker.createTopic("req-b", 2);
    broker.createTopic("req-b-more", 4);
    broker.createTopic("req-b-fewer", 1);
    expect((await ensure("req-b", "req-b-more"))[0]?.partitions).toBe(4);
    await expect(ensure("req-b", "req-b-fewer")).rejects.toThrow(
      /changelog topic req-b-fewer .* has 1 partitions, fewer than request topic req-b's 2\. Create it with at least 2 partitions: kafka-topics\.sh --create --topic req-b-fewer --partitions 2 --config cleanup\.policy=compact,delete --config retention\.ms=900000 --config segment\.ms=300000/,
    );
  });

  it("says what to create when the cluster refuses to create it", async () => {
    broker.createTopic("req-c", 2);
    broker.faults.failNext(ApiKey.CreateTopics, 1, 29); // TOPIC_AUTHORIZATION_FAILED
    const failure = ensure("req-c", "req-c-changelog");
    await expect(failure).rejects.toThrow(
      /west west_b: changelog topic req-c-changelog \(idempotency records of request topic req-c\) could not be created: .*TOPIC_AUTHORIZATION_FAILED.*--partitions 2 --config cleanup\.policy=compact,delete/,
    );
    await expect(failure).rejects.toThrow(/options\.idempotency\.store: memory/);
    // Asking whether it exists did not auto-create it behind the refusal's back.
    expect(await cluster.partitionCount("req-c-changelog")).toBeUndefined();
  });
});
