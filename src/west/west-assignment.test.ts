import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkajsFor } from "../../test/support/kafkajs.ts";
import { type Broker, startBroker } from "../broker/broker.ts";
import { createKafka, type Kafka } from "../kafka/kafka-client.ts";
import { silentLogger } from "../ops/logger.ts";
import type { CallRunner } from "./call-runner.ts";
import { encodeEntry } from "./changelog-codec.ts";
import type { RestoredCall } from "./changelog-restore.ts";
import { createEndedCalls } from "./ended-calls.ts";
import { createHeldCalls } from "./held-calls.ts";
import { createOffsetCommits } from "./offset-commits.ts";
import { createAssignmentHandler, endedFromRestored } from "./west-assignment.ts";
import type { RunningCall } from "./west-call.ts";

describe("endedFromRestored", () => {
  const restored = (entry: RestoredCall["entry"]): RestoredCall => ({
    id: "c",
    entry,
    writtenAtMs: 5,
  });
  const head = { keyed: true, requestEnded: true, requestOffset: 12n, attempt: 2 };

  it("turns STARTED into a call interrupted inside the upstream", () => {
    expect(endedFromRestored(restored({ kind: "started", ...head }), "t", 1)).toMatchObject({
      kind: "interrupted",
      attempt: 2,
      position: { topic: "t", partition: 1, offset: 12n },
      finishedAt: 5,
    });
  });

  it("turns ABORTED into a call with nothing to replay", () => {
    expect(endedFromRestored(restored({ kind: "aborted", ...head }), "t", 0)).toMatchObject({
      kind: "unsettled",
      attempt: 2,
      reply: undefined,
    });
  });

  it("turns FINISHED into a replayable call whose reply may still need writing", () => {
    const records = [{ key: "c", value: null, headers: [] }];
    const kept = endedFromRestored(
      restored({
        kind: "finished",
        ...head,
        reply: { status: 0, replyBytes: 3, replyTo: "r", records },
      }),
      "t",
      0,
    );
    expect(kept).toMatchObject({
      kind: "replayable",
      reply: records,
      replyTo: "r",
      replyWritten: false,
      tooLarge: false,
    });
    const notKept = endedFromRestored(
      restored({
        kind: "finished",
        ...head,
        reply: { status: 0, replyBytes: 9e6, replyTo: "r", records: undefined },
      }),
      "t",
      0,
    );
    // Not kept means written after the reply was acknowledged.
    expect(notKept).toMatchObject({ tooLarge: true, replyWritten: true, replyBytes: 9e6 });
  });
});

describe("createAssignmentHandler", () => {
  let broker: Broker;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    kafka = createKafka({ servers: [broker.bootstrap] }, "assignment-test");
    broker.createTopic("req", 2);
    broker.createTopic("req-log", 2);
    const producer = kafkajsFor(kafka).producer();
    await producer.connect();
    const entry = (kind: "started" | "aborted", offset: number) =>
      Buffer.from(
        encodeEntry({
          kind,
          keyed: true,
          requestEnded: true,
          requestOffset: BigInt(offset),
          attempt: 1,
        }),
      );
    await producer.send({
      topic: "req-log",
      messages: [
        { partition: 0, key: "on-0", value: entry("started", 3) },
        { partition: 1, key: "on-1", value: entry("aborted", 4) },
      ],
    });
    await producer.disconnect();
  });

  afterAll(async () => {
    await broker?.close();
  });

  it("restores new partitions only, abandons and forgets revoked ones, reports readiness", async () => {
    const commits = createOffsetCommits({ commit: async () => {}, logger: silentLogger });
    const ended = createEndedCalls({
      windowMs: 60_000,
      tailGraceMs: 1_000,
      maxEntries: 100,
      maxBytes: 1 << 20,
      complete: commits.complete,
    });
    const abandoned: string[] = [];
    const running = [
      { id: "run-0", position: { topic: "req", partition: 0, offset: 1n } },
    ] as RunningCall[];
    const runner = {
      abandon: (which: (call: RunningCall) => boolean) => {
        for (const call of running) if (which(call)) abandoned.push(call.id);
      },
    } as CallRunner;
    const readiness: string[] = [];
    const handle = createAssignmentHandler({
      groupId: "g",
      commits,
      held: createHeldCalls({ maxRecords: 10, maxBytes: 1 << 20 }),
      runner,
      ended,
      changelogs: new Map([["req", { requestTopic: "req", topic: "req-log", partitions: 2 }]]),
      kafka,
      windowMs: 60_000,
      tailGraceMs: 1_000,
      logger: silentLogger,
      restoreReadiness: {
        ready: () => readiness.push("ready"),
        unready: (reason) => readiness.push(reason),
      },
    });
    const p0 = { topic: "req", partition: 0 };
    const p1 = { topic: "req", partition: 1 };
    // First assignment: part of start-up (its readiness is the caller's).
    await handle([p0], new Map());
    expect(ended.get("on-0")?.kind).toBe("interrupted");
    expect(ended.get("on-1")).toBeUndefined();
    expect(readiness).toEqual([]);
    // Partition 0 moves away, partition 1 comes.
    await handle([p1], new Map([["req\u00001", 0]]));
    expect(abandoned).toEqual(["run-0"]);
    expect(ended.get("on-0")).toBeUndefined();
    expect(ended.get("on-1")?.kind).toBe("unsettled");
    expect(readiness).toEqual(["restoring the idempotency changelog of 1 partitions", "ready"]);
    // Kept partitions are not restored again.
    await handle([p1], new Map());
    expect(readiness).toHaveLength(2);
  });

  it("refuses a request partition the changelog does not have", async () => {
    const commits = createOffsetCommits({ commit: async () => {}, logger: silentLogger });
    const handle = createAssignmentHandler({
      groupId: "g",
      commits,
      held: createHeldCalls({ maxRecords: 10, maxBytes: 1 << 20 }),
      runner: { abandon: () => {} } as unknown as CallRunner,
      ended: createEndedCalls({
        windowMs: 1,
        tailGraceMs: 1,
        maxEntries: 1,
        maxBytes: 1,
        complete: () => {},
      }),
      changelogs: new Map([["req", { requestTopic: "req", topic: "req-log", partitions: 1 }]]),
      kafka,
      windowMs: 60_000,
      tailGraceMs: 1_000,
      logger: silentLogger,
    });
    const assign = () => handle([{ topic: "req", partition: 1 }], new Map());
    await expect(assign()).rejects.toThrow(
      /changelog topic req-log has 1 partitions; request topic req now has partition 1: add partitions/,
    );
    // The group joins again: the partition is still to restore, not taken as kept.
    await expect(assign()).rejects.toThrow(/add partitions/);
  });
});
