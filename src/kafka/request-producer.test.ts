import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { silentLogger } from "../ops/logger.ts";
import { createKafka, type Kafka } from "./kafka-client.ts";
import { KafkaConnectionError, KafkaProtocolError } from "./protocol/errors.ts";
import type { ContractRecord } from "./record-contract.ts";
import { createRequestProducer, ProduceError, produceErrorFrom } from "./request-producer.ts";

let broker: Broker;
let kafka: Kafka;

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: 4 });
  broker.createTopic("requests", 4);
  kafka = createKafka({ servers: [broker.bootstrap] }, "request-producer-test");
});

afterAll(async () => {
  await broker?.close();
});

const record = (key: string, text: string | null): ContractRecord => ({
  key,
  value: text === null ? null : new TextEncoder().encode(text),
  headers: [["h", key]],
});

/** Every record of `topic`, read from the beginning. */
async function readAll(topic: string, expected: number, on: Kafka = kafka) {
  const consumer = kafkajsFor(on).consumer({
    groupId: `read-${Math.random()}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: Array<{ partition: number; key: string; value: string | null }> = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        out.push({
          partition,
          key: message.key?.toString() ?? "",
          value: message.value === null ? null : message.value.toString(),
        });
        if (out.length === expected) resolve();
      },
    });
  });
  await consumer.disconnect();
  return out;
}

describe("createRequestProducer", () => {
  test("concurrent calls share batches and keep each call's order", async () => {
    const producer = await createRequestProducer({ kafka, logger: silentLogger });
    const calls = 50;
    const sends: Promise<void>[] = [];
    for (let step = 0; step < 3; step++) {
      for (let c = 0; c < calls; c++) {
        sends.push(producer.send("requests", 1, record(`call-${c}`, step < 2 ? `m${step}` : null)));
      }
    }
    await Promise.all(sends);
    // 150 records from one turn of the event loop leave together, not one request each.
    expect(producer.batches).toBeLessThanOrEqual(2);
    expect(producer.pending).toBe(0);
    await producer.close();

    const records = await readAll("requests", calls * 3);
    for (let c = 0; c < calls; c++) {
      const mine = records.filter((r) => r.key === `call-${c}`);
      expect(mine.map((r) => r.value)).toEqual(["m0", "m1", null]);
      expect(new Set(mine.map((r) => r.partition)).size).toBe(1);
    }
  });

  test("records queued while a batch is in flight leave in the next one, in order", async () => {
    broker.createTopic("requests-pipelined", 1);
    const producer = await createRequestProducer({ kafka, logger: silentLogger });
    const first = producer.send("requests-pipelined", -1, record("k", "a"));
    await new Promise((r) => setImmediate(r)); // the first batch is now in flight
    const rest = ["b", "c", "d"].map((v) =>
      producer.send("requests-pipelined", -1, record("k", v)),
    );
    await Promise.all([first, ...rest]);
    expect(producer.batches).toBe(2);
    await producer.close();
    expect((await readAll("requests-pipelined", 4)).map((r) => r.value)).toEqual([
      "a",
      "b",
      "c",
      "d",
    ]);
  });

  test("a new call's records leave while an earlier call's batch is in flight; the earlier call's next record waits for it", async () => {
    broker.createTopic("requests-overlapping", 1);
    const producer = await createRequestProducer({ kafka, logger: silentLogger });
    await producer.send("requests-overlapping", 1, record("warm-up", "w"));
    broker.faults.setLatency(400);
    try {
      const started = performance.now();
      const at = (p: Promise<void>) => p.then(() => performance.now() - started);
      const a1 = at(producer.send("requests-overlapping", 1, record("a", "a1")));
      await new Promise((r) => setImmediate(r)); // a1's batch is in flight
      const b1 = at(producer.send("requests-overlapping", 1, record("b", "b1")));
      await new Promise((r) => setImmediate(r)); // b1 left beside it
      const a2 = at(producer.send("requests-overlapping", 1, record("a", "a2")));
      const [a1Ms, b1Ms, a2Ms] = await Promise.all([a1, b1, a2]);
      // b1 did not wait for a1's acknowledgement (one 400 ms answer each, side by side)...
      expect(b1Ms - a1Ms).toBeLessThan(200);
      // ...a2 did: same key, so it left only after a1 was acknowledged.
      expect(a2Ms - a1Ms).toBeGreaterThanOrEqual(350);
    } finally {
      broker.faults.setLatency(0);
    }
    await producer.close();
    const values = (await readAll("requests-overlapping", 4)).map((r) => r.value);
    expect(values.indexOf("a1")).toBeLessThan(values.indexOf("a2"));
  });

  test("a batch never exceeds maxBatchBytes (unless one record does)", async () => {
    broker.createTopic("requests-sized", 1);
    const producer = await createRequestProducer({
      kafka,
      logger: silentLogger,
      maxBatchBytes: 2_000,
    });
    const big = "x".repeat(900);
    await Promise.all(
      Array.from({ length: 6 }, () => producer.send("requests-sized", 1, record("k", big))),
    );
    expect(producer.batches).toBe(3);
    await producer.close();
  });

  test("an unreachable cluster is reported as such, at the record's deadline", async () => {
    const doomed = await startBroker({ port: 0 });
    const producer = await createRequestProducer({
      kafka: createKafka({ servers: [doomed.bootstrap] }),
      logger: silentLogger,
    });
    await doomed.close();
    const started = Date.now();
    const error = await producer
      .send("gone", 1, record("k", "v"), started + 1_500)
      .catch((e: unknown) => e);
    // Retried until its deadline (not the client's 60 s maximum), then given up.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toBeInstanceOf(ProduceError);
    expect((error as ProduceError).unreachable).toBe(true);
    await producer.close();
  });

  test("a refused record takes its call's queued records with it; other calls and later records go", async () => {
    // Kafka's batch limit on a broker of its own: one record over it is refused for good.
    const limited = await startBroker({ port: 0, defaultPartitions: 1, maxMessageBytes: 2_000 });
    limited.createTopic("limited", 1);
    const limitedKafka = createKafka({ servers: [limited.bootstrap] }, "request-producer-limit");
    // Batches kept under the limit, as the producer's 900 KiB keep them under Kafka's 1 MB:
    // a record over it goes alone.
    const producer = await createRequestProducer({
      kafka: limitedKafka,
      logger: silentLogger,
      maxBatchBytes: 1_500,
    });
    try {
      const outcomes: string[] = [];
      const listener = (name: string) => ({
        onProduced: () => outcomes.push(`${name} ok`),
        onProduceFailed: (e: ProduceError) =>
          outcomes.push(
            `${name} ${e.message.includes("MESSAGE_TOO_LARGE") ? "refused" : e.message}`,
          ),
      });
      const a = listener("a");
      const b = listener("b");
      const submit = (l: ReturnType<typeof listener>, r: ContractRecord | ContractRecord[]) =>
        producer.submit("limited", 1, r, Number.POSITIVE_INFINITY, l);
      submit(a, record("a", "first"));
      await expect.poll(() => outcomes).toEqual(["a ok"]);
      // One turn: a's big record, then two more of a's and one of b's.
      submit(a, record("a", "x".repeat(5_000)));
      submit(a, record("a", "third"));
      submit(a, record("a", null));
      submit(b, record("b", "other call"));
      await expect.poll(() => outcomes.length).toBe(5);
      expect(outcomes.filter((o) => o.startsWith("a"))).toEqual([
        "a ok",
        "a refused",
        "a refused",
        "a refused",
      ]);
      expect(outcomes).toContain("b ok");
      // What a sends once told (two records, one item) goes out.
      submit(a, [record("a", null), record("a", null)]);
      await expect.poll(() => outcomes.length).toBe(6);
      expect(outcomes.at(-1)).toBe("a ok");
      const written = await readAll("limited", 4, limitedKafka);
      expect(written.map((r) => `${r.key}:${r.value}`)).toEqual([
        "a:first",
        "b:other call",
        "a:null",
        "a:null",
      ]);
    } finally {
      await producer.close();
      await limited.close();
    }
  });

  test("records refused only for sharing a batch with a larger one go again alone and pass", async () => {
    // Kafka's limit below the producer's batch bound: one large record makes the whole
    // partition batch too large; the others must not fail with it.
    const limited = await startBroker({ port: 0, defaultPartitions: 1, maxMessageBytes: 2_000 });
    limited.createTopic("shared", 1);
    const limitedKafka = createKafka({ servers: [limited.bootstrap] }, "request-producer-split");
    const producer = await createRequestProducer({ kafka: limitedKafka, logger: silentLogger });
    try {
      const outcomes = new Map<string, string>();
      const listener = (name: string) => ({
        onProduced: () => outcomes.set(name, "ok"),
        onProduceFailed: (e: ProduceError) =>
          outcomes.set(name, e.message.includes("MESSAGE_TOO_LARGE") ? "refused" : e.message),
      });
      // One turn, one batch: three calls, the middle one's record over the limit.
      producer.submit("shared", 1, record("a", "small a"), Number.POSITIVE_INFINITY, listener("a"));
      producer.submit(
        "shared",
        1,
        record("b", "x".repeat(5_000)),
        Number.POSITIVE_INFINITY,
        listener("b"),
      );
      producer.submit("shared", 1, record("c", "small c"), Number.POSITIVE_INFINITY, listener("c"));
      await expect.poll(() => outcomes.size).toBe(3);
      expect(Object.fromEntries(outcomes)).toEqual({ a: "ok", b: "refused", c: "ok" });
      const written = await readAll("shared", 2, limitedKafka);
      expect(written.map((r) => `${r.key}:${r.value}`)).toEqual(["a:small a", "c:small c"]);
    } finally {
      await producer.close();
      await limited.close();
    }
  });

  test("produceErrorFrom looks through wrapping errors for a lost connection", () => {
    const refusedSocket = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), {
      code: "ECONNREFUSED",
    });
    const wrapped = new Error("produce gave up", { cause: refusedSocket });
    expect(produceErrorFrom(wrapped).unreachable).toBe(true);
    expect(produceErrorFrom(new KafkaConnectionError("no answer")).unreachable).toBe(true);
    const refused = new KafkaProtocolError(10, "MESSAGE_TOO_LARGE");
    expect(produceErrorFrom(refused).unreachable).toBe(false);
    expect(produceErrorFrom(refused).message).toBe("MESSAGE_TOO_LARGE");
  });
});
