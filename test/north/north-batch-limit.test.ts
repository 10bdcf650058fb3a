/**
 * A request record Kafka refuses for good (larger than the topic's `max.message.bytes`) in the
 * middle of a client stream: the records after it must not reach west as if the stream had
 * been whole, or the upstream would run the call on a request with a message missing. The
 * embedded broker enforces Kafka's default batch limit here.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type NorthFixture, startNorthFixture } from "./north-fixture.ts";

let fx: NorthFixture;

beforeAll(async () => {
  fx = await startNorthFixture(() => {}, "west", {}, { maxMessageBytes: 1_048_588 });
});

afterAll(async () => {
  await fx?.close();
});

/** The messages; with `firstAlone`, the rest only once the first is in Kafka (acknowledged alone). */
async function* messages(texts: string[], firstAlone: boolean) {
  for (const [i, message] of texts.entries()) {
    yield { message };
    if (i === 0 && firstAlone) {
      await fx.responder.waitFor(
        (r) => r.value !== null && fromBinary(EchoRequestSchema, r.value).message === message,
      );
    }
  }
}

describe("north under Kafka's batch limit", () => {
  it.each([
    ["after.its.first.message.was.acknowledged", true],
    ["sent.at.once", false],
  ])(
    "client.stream.with.a.refused.message.never.reaches.the.upstream.whole.%s",
    async (tag, firstAlone) => {
      const big = `gap:big:${"x".repeat(1_500_000)}`;
      const first = `gap:first:${tag}`;
      const texts = [first, big, "gap:third", "gap:fourth"];
      const error = await fx.client.clientStreamingEcho(messages(texts, firstAlone)).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      // The caller learns its request was refused...
      expect(error?.code).toBe(Code.Internal);
      expect(error?.rawMessage).toMatch(/MESSAGE_TOO_LARGE/);
      // ...and the upstream never runs the call on the request without the refused message: it
      // saw the first message and a reset (or nothing), never the request's end.
      await new Promise((r) => setTimeout(r, 1_500));
      const seen = (fx.echo?.requests ?? []).filter((r) => r.messages[0] === first);
      if (firstAlone) expect(seen).toHaveLength(1);
      for (const request of seen) {
        expect(request.messages).toEqual([first]);
        expect(request.reset).toBe(true);
      }
    },
  );

  it("a.call.after.a.refused.stream.is.answered.as.usual", async () => {
    const reply = await fx.client.unaryEcho({ message: "after" });
    expect(reply.message).toBe("after");
  });
});
