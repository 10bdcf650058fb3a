/**
 * Compressed records between the gateway and a foreign client (kcat, librdkafka), every
 * codec, both directions, through the whole gateway:
 * - west serves requests kcat wrote compressed (request → upstream call → reply kcat reads);
 * - north's reply reader delivers replies kcat wrote compressed to the waiting gRPC call;
 * - with `compression` set, the gateway's own request and reply batches are stored in that
 *   codec and kcat reads them back byte for byte.
 * Each test first checks that the batch really is stored compressed (a raw Fetch).
 */
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { kcatRead, storedCodecs, waitFor } from "../../src/kafka/client/wire-test-kit.ts";
import {
  type CompressionCodec,
  codecId,
  zstdCompressionAvailable,
} from "../../src/kafka/protocol/compression.ts";
import {
  type CodecStack,
  kcatReply,
  kcatRequest,
  longMessage,
  replyTopic,
  requestTopic,
  startCodecStack,
} from "./codec-stack.ts";

const kcatCodecs = ["none", "gzip", "snappy", "lz4", "zstd"] as const;

const header = (flat: string[] | undefined, name: string) => {
  const list = flat ?? [];
  for (let i = 0; i + 1 < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
};

describe("west reads requests kcat compressed", () => {
  let stack: CodecStack;
  beforeAll(async () => {
    stack = await startCodecStack({ withNorth: false });
  });
  afterAll(async () => stack?.close());

  for (const codec of kcatCodecs) {
    it(`serves a request written with ${codec}; kcat reads the reply`, async () => {
      const { bootstrap } = stack.broker;
      const id = `kcat-${codec}-${randomUUID()}`;
      const message = longMessage(codec);
      const before = (await storedCodecs(bootstrap, requestTopic, 0)).length;
      await kcatRequest(bootstrap, id, message, codec, 0);
      const written = (await storedCodecs(bootstrap, requestTopic, 0)).slice(before);
      expect(written).toContain(codecId(codec));

      let reply: { payload: string | null; headers?: string[] } | undefined;
      await waitFor(async () => {
        const records = await kcatRead(bootstrap, replyTopic);
        reply = records.find((r) => r.key === id && r.payload !== null);
        return reply !== undefined;
      }, `the reply to ${id}`);
      const bytes = Buffer.from(reply?.payload ?? "", "latin1");
      expect(fromBinary(EchoResponseSchema, bytes).message).toBe(message);
      expect(header(reply?.headers, "zilla:correlation-id")).toBe(id);
      expect(stack.echo.requests.some((r) => r.messages[0] === message)).toBe(true);
    });
  }
});

describe("north's reply reader reads replies kcat compressed", () => {
  let stack: CodecStack;
  beforeAll(async () => {
    // No west: the test answers each request itself, with kcat.
    stack = await startCodecStack({ withWest: false });
  });
  afterAll(async () => stack?.close());

  for (const codec of kcatCodecs) {
    it(`delivers a reply written with ${codec} to the gRPC call`, async () => {
      const { bootstrap } = stack.broker;
      const message = longMessage(`north ${codec}`);
      const call = stack.client.unaryEcho({ message }, { timeoutMs: 30_000 });
      let id: string | undefined;
      await waitFor(async () => {
        const requests = await kcatRead(bootstrap, requestTopic);
        const request = requests.find((r) => r.payload?.includes(message));
        id = header(request?.headers, "zilla:correlation-id");
        return id !== undefined;
      }, "north's request record");
      const before = (await storedCodecs(bootstrap, replyTopic, 1)).length;
      await kcatReply(bootstrap, id as string, `reply ${message}`, codec, 1);
      const written = (await storedCodecs(bootstrap, replyTopic, 1)).slice(before);
      expect(written).toContain(codecId(codec));
      expect((await call).message).toBe(`reply ${message}`);
    });
  }
});

describe("the gateway's own batches with the compression option, read by kcat", () => {
  // zstd is written where node:zlib has it (Bun, Deno, Node 22.15+): on Node 20 the option
  // is refused at config validation (codec-config.test.ts); the runtime smoke writes it.
  const codecs: CompressionCodec[] = ["gzip", "snappy", "lz4"];
  if (zstdCompressionAvailable()) codecs.push("zstd");

  for (const codec of codecs) {
    it(`north's requests and west's replies are ${codec} batches kcat reads exactly`, async () => {
      const stack = await startCodecStack({
        configure: (config) => {
          config.kafka.compression = codec;
        },
      });
      try {
        const { bootstrap } = stack.broker;
        const message = longMessage(`own ${codec}`);
        expect((await stack.client.unaryEcho({ message })).message).toBe(message);

        const requests = await kcatRead(bootstrap, requestTopic);
        const request = requests.find((r) => r.payload?.includes(message));
        const id = header(request?.headers, "zilla:correlation-id");
        expect(id).toBeDefined();
        // The request's protobuf bytes, as north wrote them, and its end tombstone.
        expect(request?.payload).toBe(`\n${String.fromCharCode(message.length)}${message}`);
        const ofCall = requests.filter((r) => r.key === request?.key);
        expect(ofCall.map((r) => r.payload === null)).toEqual([false, true]);

        const replies = (await kcatRead(bootstrap, replyTopic)).filter(
          (r) => header(r.headers, "zilla:correlation-id") === id,
        );
        expect(replies.map((r) => r.payload)).toEqual([
          `\n${String.fromCharCode(message.length)}${message}`,
          null,
        ]);
        expect(header(replies[1]?.headers, "zilla:status")).toBe("0");

        // Every batch either side wrote is stored in the codec.
        const stored: number[] = [];
        for (const topic of [requestTopic, replyTopic]) {
          for (const partition of [0, 1]) {
            stored.push(...(await storedCodecs(bootstrap, topic, partition)));
          }
        }
        expect(stored.length).toBeGreaterThanOrEqual(2);
        expect(new Set(stored)).toEqual(new Set([codecId(codec)]));
      } finally {
        await stack.close();
      }
    });
  }
});
