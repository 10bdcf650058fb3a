/**
 * A batch the gateway cannot decode is never read past silently. Stored corrupt on purpose
 * (the broker's alterNextBatch fault: a broken CRC, or a codec id Kafka does not define):
 * - policy fail (the default): west serves the requests before it and none after it on that
 *   partition, never commits past it, logs topic/partition/offset, counts it, and /readyz is
 *   503 naming the partition; other partitions go on. North's reply reader delivers no reply
 *   from the held partition (the call reaches its deadline), and /readyz names it.
 * - policy skip: the requests after it are served, the skipped offsets logged and counted,
 *   /readyz stays 200.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { Kafka, logLevel } from "kafkajs";
import { afterEach, describe, expect, it } from "vitest";
import { kcatRead, waitFor } from "../../src/kafka/client/wire-test-kit.ts";
import { sample } from "../ops/ops-fixture.ts";
import {
  breakCrc,
  type CodecStack,
  kcatReply,
  kcatRequest,
  longMessage,
  replyTopic,
  requestTopic,
  startCodecStack,
  unknownCodec,
  writeRequestBatch,
} from "./codec-stack.ts";

const groupId = "zilla:example-west_kafka_grpc_remote_server";

let stack: CodecStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** The group's committed offset of `requestTopic`-`partition` (-1: none). */
async function committed(bootstrap: string, partition: number): Promise<number> {
  const admin = new Kafka({ brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [topic] = await admin.fetchOffsets({ groupId, topics: [requestTopic] });
    const entry = topic?.partitions.find((p) => p.partition === partition);
    return Number(entry?.offset ?? -1);
  } finally {
    await admin.disconnect();
  }
}

/** Whether west answered the request with this id (a reply record kcat can read). */
async function replied(bootstrap: string, id: string): Promise<boolean> {
  return (await kcatRead(bootstrap, replyTopic)).some((r) => r.key === id);
}

const cases = [
  { name: "a broken CRC", alter: breakCrc, reason: /CRC-32C/ },
  { name: "codec id 6", alter: unknownCodec(6), reason: /unknown compression codec id 6/ },
] as const;

describe("west and an undecodable request batch", () => {
  for (const { name, alter, reason } of cases) {
    it(`holds the partition at ${name}: nothing after it served or committed, logged, counted, /readyz 503`, async () => {
      stack = await startCodecStack({ withNorth: false });
      const { bootstrap } = stack.broker;
      const id = (tag: string) => `${tag}-${randomUUID()}`;
      const [a, b, c, d] = [id("a"), id("b"), id("c"), id("d")];
      await kcatRequest(bootstrap, a, longMessage("before"), "lz4", 0);
      await waitFor(() => replied(bootstrap, a), "the reply to the request before");
      stack.broker.faults.alterNextBatch(requestTopic, alter);
      await writeRequestBatch(bootstrap, b, longMessage("broken"), 0); // offsets 2-3
      await kcatRequest(bootstrap, c, longMessage("after"), "snappy", 0);
      await kcatRequest(bootstrap, d, longMessage("other partition"), "gzip", 1);

      // The other partition goes on.
      await waitFor(() => replied(bootstrap, d), "the reply on the other partition");
      await waitFor(
        () => stack?.logs.some((l) => l.level === "error" && l.topic === requestTopic) ?? false,
        "the error log line",
      );
      const line = stack.logs.find((l) => l.level === "error" && l.topic === requestTopic);
      expect(line).toMatchObject({ partition: 0, offset: 2, policy: "fail" });
      expect(String(line?.reason)).toMatch(reason);
      expect(String(line?.msg)).toMatch(/partition held/);

      const ready = await stack.ops("/readyz");
      expect(ready.status).toBe(503);
      expect(ready.body).toContain(`${requestTopic}-0 held at offset 2`);
      const metrics = (await stack.ops("/metrics")).body;
      const labels = { topic: requestTopic, partition: "0" };
      expect(
        sample(metrics, "kafka_undecodable_batches_total", { ...labels, action: "held" }),
      ).toBe(1);
      expect(sample(metrics, "kafka_held_partitions", labels)).toBe(1);

      await waitFor(async () => (await committed(bootstrap, 0)) === 2, "the commit of a");
      // A fixed wait, only to show that nothing more happens on the held partition.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await replied(bootstrap, b)).toBe(false);
      expect(await replied(bootstrap, c)).toBe(false);
      expect(stack.echo.requests.some((r) => r.messages[0] === longMessage("after"))).toBe(false);
      expect(await committed(bootstrap, 0)).toBe(2);
      // Logged once, not once per fetch.
      expect(
        stack.logs.filter((l) => l.level === "error" && l.topic === requestTopic),
      ).toHaveLength(1);
    });
  }

  it("skips it with policy skip: the request after it is served, the offsets logged and counted", async () => {
    stack = await startCodecStack({
      withNorth: false,
      configure: (config) => {
        config.kafka.undecodableBatches = "skip";
      },
    });
    const { bootstrap } = stack.broker;
    const [a, b, c] = ["a", "b", "c"].map((tag) => `${tag}-${randomUUID()}`) as [
      string,
      string,
      string,
    ];
    await kcatRequest(bootstrap, a, longMessage("before"), "none", 0);
    stack.broker.faults.alterNextBatch(requestTopic, breakCrc);
    await writeRequestBatch(bootstrap, b, longMessage("broken"), 0); // offsets 2-3
    await kcatRequest(bootstrap, c, longMessage("after"), "lz4", 0);
    await waitFor(() => replied(bootstrap, c), "the reply to the request after");
    expect(await replied(bootstrap, a)).toBe(true);
    expect(await replied(bootstrap, b)).toBe(false);

    const line = stack.logs.find((l) => l.level === "warn" && l.topic === requestTopic);
    expect(line).toMatchObject({ partition: 0, fromOffset: 2, toOffset: 3 });
    expect(String(line?.msg)).toMatch(/skipped/);
    expect(String(line?.reason)).toMatch(/CRC-32C/);
    const metrics = (await stack.ops("/metrics")).body;
    const labels = { topic: requestTopic, partition: "0" };
    expect(
      sample(metrics, "kafka_undecodable_batches_total", { ...labels, action: "skipped" }),
    ).toBe(1);
    expect(sample(metrics, "kafka_skipped_offsets_total", labels)).toBe(2);
    expect((await stack.ops("/readyz")).status).toBe(200);
    await waitFor(async () => (await committed(bootstrap, 0)) === 6, "the commit past c");
  });
});

describe("north's reply reader and an undecodable reply batch", () => {
  it("holds the reply partition: its calls reach their deadline, the other partition's do not; /readyz names it", async () => {
    stack = await startCodecStack({ withWest: false });
    const { bootstrap } = stack.broker;
    stack.broker.faults.alterNextBatch(replyTopic, unknownCodec(7));
    await kcatReply(bootstrap, "nobody", "garbage", "none", 0);
    await waitFor(
      () => stack?.logs.some((l) => l.level === "error" && l.topic === replyTopic) ?? false,
      "the error log line",
    );
    const line = stack.logs.find((l) => l.level === "error" && l.topic === replyTopic);
    expect(line).toMatchObject({ partition: 0, offset: 0, reader: "north reply reader" });
    const ready = await stack.ops("/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toContain(`${replyTopic}-0 held at offset 0`);

    /** Calls north and answers the request with kcat on `partition`. */
    const callAnsweredOn = async (partition: number, message: string) => {
      const call = stack?.client.unaryEcho({ message }, { timeoutMs: 3_000 });
      let id: string | undefined;
      await waitFor(async () => {
        const request = (await kcatRead(bootstrap, requestTopic)).find((r) =>
          r.payload?.includes(message),
        );
        const headers = request?.headers ?? [];
        id = headers[headers.indexOf("zilla:correlation-id") + 1];
        return request !== undefined;
      }, "north's request record");
      await kcatReply(bootstrap, id as string, message, "gzip", partition);
      return call;
    };
    expect((await callAnsweredOn(1, longMessage("on 1")))?.message).toBe(longMessage("on 1"));
    const error = await callAnsweredOn(0, longMessage("on 0")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ConnectError.from(error).code).toBe(Code.DeadlineExceeded);
  });
});
