import { describe, expect, it } from "vitest";
import { KafkaAnswerError } from "../protocol/errors.ts";
import type { MetadataResponse } from "./apis/metadata.ts";
import { checkMetadataAnswer } from "./cluster-metadata.ts";

const topic = (name: string, partitions: number[]) => ({
  error: 0,
  name,
  partitions: partitions.map((partition) => ({ error: 0, partition, leader: 1, leaderEpoch: 0 })),
});
const answer = (...topics: MetadataResponse["topics"]): MetadataResponse => ({
  brokers: [{ node: 1, host: "h", port: 9092 }],
  controller: 1,
  topics,
});

describe("checkMetadataAnswer", () => {
  it("accepts the topics asked for with partitions 0..n-1 in any order", () => {
    expect(() => checkMetadataAnswer("b:1", ["a"], answer(topic("a", [2, 0, 1])))).not.toThrow();
    expect(() => checkMetadataAnswer("b:1", [], answer())).not.toThrow();
  });

  it("rejects a topic not asked for, one left out, and partitions with gaps or repeats", () => {
    expect(() =>
      checkMetadataAnswer("b:1", ["a"], answer(topic("a", [0]), topic("x", [0]))),
    ).toThrow(/names topic x, which was not asked for/);
    expect(() => checkMetadataAnswer("b:1", ["a", "b"], answer(topic("a", [0])))).toThrow(
      /leaves out topic b/,
    );
    expect(() => checkMetadataAnswer("b:1", ["a"], answer(topic("a", [0, 2])))).toThrow(
      /gives a 2 partitions but names partition 2/,
    );
    expect(() => checkMetadataAnswer("b:1", ["a"], answer(topic("a", [-1])))).toThrow(
      KafkaAnswerError,
    );
    expect(() => checkMetadataAnswer("b:1", ["a"], answer(topic("a", [0, 0])))).toThrow(/twice/);
  });
});
