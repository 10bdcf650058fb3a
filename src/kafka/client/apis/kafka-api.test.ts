import { describe, expect, it } from "vitest";
import { KafkaAnswerError } from "../../protocol/errors.ts";
import { Reader, Writer } from "../../protocol/wire.ts";
import { joinGroupApi } from "./join-group.ts";
import { checkAnsweredPartitions, readAnswer } from "./kafka-api.ts";
import { listOffsetsApi } from "./list-offsets.ts";

describe("checkAnsweredPartitions", () => {
  const asked = new Map([["t", [0, 2]]]);
  const p = (topic: string, partition: number) => ({ topic, partition });

  it("accepts an answer naming exactly what was asked, in any order", () => {
    expect(() =>
      checkAnsweredPartitions("ListOffsets", "b:1", asked, [p("t", 2), p("t", 0)], true),
    ).not.toThrow();
  });

  it("rejects a partition not asked for, naming it", () => {
    expect(() =>
      checkAnsweredPartitions("ListOffsets", "b:1", asked, [p("t", 0), p("t", -1)], true),
    ).toThrow(new KafkaAnswerError("b:1: ListOffsets answer names t--1, which was not asked for"));
    expect(() => checkAnsweredPartitions("Fetch", "b:1", asked, [p("u", 0)], false)).toThrow(
      KafkaAnswerError,
    );
  });

  it("rejects one left out only where the API answers every partition asked", () => {
    expect(() => checkAnsweredPartitions("OffsetFetch", "b:1", asked, [p("t", 0)], true)).toThrow(
      /OffsetFetch answer leaves out t-2/,
    );
    expect(() => checkAnsweredPartitions("Fetch", "b:1", asked, [p("t", 0)], false)).not.toThrow();
  });
});

describe("readAnswer", () => {
  it("turns a truncated answer into a KafkaAnswerError naming the API", () => {
    const r = new Reader(new Uint8Array([0, 0, 0, 1]));
    expect(() => readAnswer("ListOffsets", "b:1", () => listOffsetsApi.readResponse(r, 1))).toThrow(
      KafkaAnswerError,
    );
  });
});

describe("joinGroupApi", () => {
  /** A JoinGroup v5 answer with `error` and the given strings (null written as -1). */
  const answer = (
    error: number,
    protocol: string | null,
    leader: string | null,
    me: string | null,
  ) => {
    const w = new Writer();
    w.int32(0).int16(error).int32(-1);
    w.nullableString(protocol).nullableString(leader).nullableString(me);
    w.int32(0); // no members
    return new Reader(w.bytesView());
  };

  it("reads an error answer with null strings (librdkafka's mock) by its error code", () => {
    expect(joinGroupApi.readResponse(answer(15, null, null, null), 5)).toEqual({
      error: 15,
      generation: -1,
      protocol: "",
      leader: "",
      memberId: "",
      members: [],
    });
  });

  it("rejects a successful answer without a member id", () => {
    expect(() => joinGroupApi.readResponse(answer(0, "range", "m", null), 5)).toThrow(
      KafkaAnswerError,
    );
  });
});
