import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, test } from "vitest";
import { defaultGrpcKafkaOptions } from "../../config/types.ts";
import { createKafka } from "../../kafka/kafka-client.ts";
import { silentLogger } from "../../ops/logger.ts";
import { createFetchCapability } from "./fetch-capability.ts";

describe("createFetchCapability", () => {
  test("a non-empty request is ABORTED before Kafka is touched", async () => {
    // Nothing listens on port 1: reaching Kafka would fail differently (and slowly).
    const kafka = createKafka({ servers: ["127.0.0.1:1"] });
    const capability = createFetchCapability({
      kafka,
      logger: silentLogger,
      options: defaultGrpcKafkaOptions(),
    });
    try {
      const stream = capability.stream({
        route: { capability: "fetch", topic: "t" },
        request: Uint8Array.of(0x0a, 0x00),
        metadata: new Headers(),
        signal: new AbortController().signal,
      });
      const error = await (async () => {
        for await (const _ of stream) return undefined;
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.Aborted);
      expect(capability.stats().topics).toEqual([]);
    } finally {
      await capability.close();
    }
  });

  test("rejects a reliability field number protobuf cannot encode", () => {
    const options = defaultGrpcKafkaOptions();
    options.reliability.field = 0;
    const kafka = createKafka({ servers: ["127.0.0.1:1"] });
    expect(() => createFetchCapability({ kafka, logger: silentLogger, options })).toThrow(
      /field number/,
    );
  });
});
