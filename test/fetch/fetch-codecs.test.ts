/**
 * The fetch capability and compressed or undecodable batches: a topic written by kcat with
 * every codec streams to a gRPC client in order; a batch that cannot be decoded stops the
 * topic's readers at that point on its partition (policy fail: the client gets what came
 * before it and nothing after, the watch shows the partition held), or is skipped (policy
 * skip: the client gets what comes after it).
 */
import { afterEach, describe, expect, it } from "vitest";
import { kcat, storedCodecs, waitFor } from "../../src/kafka/client/wire-test-kit.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import {
  createUndecodableWatch,
  type UndecodablePolicy,
  type UndecodableWatch,
} from "../../src/kafka/undecodable-batches.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { breakCrc } from "../codecs/codec-stack.ts";
import {
  type FetchHarness,
  openStream,
  recordValue,
  startFetchHarness,
  topicHeader,
} from "./fetch-harness.ts";

let harness: FetchHarness | undefined;
let watch: UndecodableWatch | undefined;
afterEach(async () => {
  await harness?.close();
  watch?.close();
  harness = undefined;
});

async function start(policy: UndecodablePolicy): Promise<FetchHarness> {
  watch = createUndecodableWatch({ policy, logger: silentLogger });
  harness = await startFetchHarness({
    // librdkafka compresses only for brokers that list Produce from v0.
    broker: { apiVersionCaps: { [ApiKey.Produce]: [0, 8] } },
    undecodable: watch,
  });
  return harness;
}

/** Writes FanoutMessages `texts` to `topic`-0 with kcat, one batch, compressed with `codec`. */
async function kcatMessages(h: FetchHarness, topic: string, texts: string[], codec: string) {
  const input = texts.map((t) => recordValue(t).toString("latin1")).join("|");
  await kcat(
    ["-P", "-b", h.broker.bootstrap, "-t", topic, "-p", "0", "-D", "|"].concat([
      "-X",
      `compression.codec=${codec}`,
    ]),
    Buffer.from(`${input}|`, "latin1"),
  );
}

const texts = (tag: string) =>
  Array.from({ length: 4 }, (_, i) => `${tag} message ${i} ${"fanned out ".repeat(6)}`);

describe("fetch and compressed batches", () => {
  it("streams a topic kcat wrote with every codec, in order", async () => {
    const h = await start("fail");
    const topic = "fetch-codecs";
    h.createTopic(topic, 1);
    const codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for (const codec of codecs) await kcatMessages(h, topic, texts(codec), codec);
    // librdkafka may split a run (a small part then goes uncompressed): every codec is there.
    const stored = await storedCodecs(h.broker.bootstrap, topic);
    expect(new Set(stored)).toEqual(new Set([0, 1, 2, 3, 4]));
    const stream = openStream(h.client(), { [topicHeader]: topic });
    const all = codecs.flatMap(texts);
    const got = await stream.waitFor(all.length);
    expect(got.map((m) => m.message)).toEqual(all);
    stream.cancel();
  });

  it("stops at an undecodable batch (policy fail): what came before, nothing after", async () => {
    const h = await start("fail");
    const topic = "fetch-held";
    h.createTopic(topic, 1);
    await kcatMessages(h, topic, texts("before"), "lz4");
    h.broker.faults.alterNextBatch(topic, breakCrc);
    // One record: one batch, whatever librdkafka's batching does.
    await kcatMessages(h, topic, ["broken"], "none");
    await kcatMessages(h, topic, texts("after"), "zstd");
    const stream = openStream(h.client(), { [topicHeader]: topic });
    expect((await stream.waitFor(4)).map((m) => m.message)).toEqual(texts("before"));
    await waitFor(() => (watch?.held().length ?? 0) > 0, "the partition held");
    expect(watch?.held()).toEqual([
      expect.objectContaining({ topic, partition: 0, offset: 4, reader: `fetch ${topic}` }),
    ]);
    // A fixed wait, only to show that nothing past the batch arrives.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(stream.messages).toHaveLength(4);
    stream.cancel();
  });

  it("reads on past it with policy skip", async () => {
    const h = await start("skip");
    const topic = "fetch-skip";
    h.createTopic(topic, 1);
    await kcatMessages(h, topic, texts("before"), "gzip");
    h.broker.faults.alterNextBatch(topic, breakCrc);
    await kcatMessages(h, topic, ["broken"], "none");
    await kcatMessages(h, topic, texts("after"), "lz4");
    const stream = openStream(h.client(), { [topicHeader]: topic });
    expect((await stream.waitFor(8)).map((m) => m.message)).toEqual([
      ...texts("before"),
      ...texts("after"),
    ]);
    expect(watch?.held()).toEqual([]);
    stream.cancel();
  });
});
