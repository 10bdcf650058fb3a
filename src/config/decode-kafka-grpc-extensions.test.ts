import { describe, expect, it } from "vitest";
import type { DecodeContext } from "./decode.ts";
import { decodeKafkaGrpcOptions } from "./decode-kafka-options.ts";

function context(): DecodeContext {
  return { errors: [], interpolated: new Set(), unresolved: new Set() };
}

describe("kafka-grpc options this gateway adds", () => {
  it("reads the store, window, changelog and message limit next to Zilla's keys", () => {
    const ctx = context();
    const options = decodeKafkaGrpcOptions(
      ctx,
      {
        acks: "leader_only",
        idempotency: {
          metadata: "Idem-Key",
          store: "kafka",
          "window-ms": 600000,
          changelog: { topics: { "echo-requests": "echo-log" }, "reply-max-bytes": 1024 },
        },
        "max-message-bytes": 65536,
      },
      "bindings.west.options",
    );
    expect(ctx.errors).toEqual([]);
    expect(options).toMatchObject({
      acks: "leader_only",
      idempotency: { metadata: "idem-key" },
      idempotencyStore: "kafka",
      idempotencyWindowMs: 600_000,
      changelogTopics: { "echo-requests": "echo-log" },
      replayMaxBytes: 1024,
      maxMessageBytes: 65536,
    });
  });

  it("has documented defaults", () => {
    const options = decodeKafkaGrpcOptions(context(), undefined, "o");
    expect(options).toMatchObject({
      idempotencyStore: "kafka",
      idempotencyWindowMs: 300_000,
      changelogTopics: {},
      replayMaxBytes: 512 * 1024,
      maxMessageBytes: 4 * 1024 * 1024,
    });
  });

  it("names what is wrong", () => {
    const ctx = context();
    decodeKafkaGrpcOptions(
      ctx,
      {
        idempotency: { store: "disk", changelog: { topics: { t: "bad name!" }, size: 1 } },
        "max-message-bytes": 0,
      },
      "o",
    );
    expect(ctx.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'o.idempotency.store: "disk" is not valid here; use one of: kafka, memory',
      'o.idempotency.changelog.size: unknown key "size"; remove it (valid keys here: topics, reply-max-bytes)',
      'o.idempotency.changelog.topics.t: "bad name!" is not a Kafka topic name (letters, digits, ".", "_", "-"; at most 249)',
      "o.max-message-bytes: must be between 1 and 1073741824, found 0",
    ]);
  });
});
