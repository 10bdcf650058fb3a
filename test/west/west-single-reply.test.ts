/**
 * A single reply (unary, client streaming) reaches Kafka with its status, in one batch: the
 * message waits for the upstream's trailers, so north gets both in one fetch instead of the
 * message first and the status one produce later. Streaming replies still go out as they
 * come. The upstream here answers with its message at once and its trailers 400 ms later.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcFrame } from "../../src/grpc/framing.ts";
import { echoText, endOf, startWestBench, type WestBench, waitFor } from "./west-harness.ts";

const trailerDelayMs = 400;
let bench: WestBench;
let upstream: http2.Http2Server;
/** When the upstream wrote each call's message, by its text. */
const messageSentAt = new Map<string, number>();

beforeAll(async () => {
  bench = await startWestBench(1);
  upstream = http2.createServer();
  upstream.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      // The request's one message echoed back: the frame's bytes are an EchoRequest, which
      // has the same layout as an EchoResponse.
      const request = Buffer.concat(chunks).subarray(5);
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.once("wantTrailers", () => {
        setTimeout(() => stream.sendTrailers({ "grpc-status": "0" }), trailerDelayMs);
      });
      stream.write(grpcFrame(request), () => messageSentAt.set(echoText(request), Date.now()));
      stream.end();
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  await bench.startWest(`127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});

afterAll(async () => {
  await bench?.close();
  await new Promise((resolve) => upstream?.close(resolve));
});

/** Replies seen for `id` 250 ms after the upstream sent its message (its trailers are 400 ms away). */
async function repliesBeforeTrailers(id: string, text: string): Promise<number> {
  await waitFor("the upstream's message", () => messageSentAt.has(text));
  // Nothing happens for 250 ms: what arrives before the trailers is what west sent early.
  await new Promise((r) => setTimeout(r, 250));
  return bench.replies.get(id)?.length ?? 0;
}

describe("west single replies", () => {
  it("unary.reply.waits.for.status", async () => {
    const id = await bench.request({ method: "UnaryEcho", messages: ["unary-held"] });
    expect(await repliesBeforeTrailers(id, "unary-held")).toBe(0);
    const records = await bench.reply(id);
    expect(records.map((r) => (r.value === null ? null : echoText(r.value)))).toEqual([
      "unary-held",
      null,
    ]);
    expect(endOf(records).status).toBe(0);
  });

  it("server.stream.reply.not.held", async () => {
    const id = await bench.request({ method: "ServerStreamingEcho", messages: ["streamed"] });
    expect(await repliesBeforeTrailers(id, "streamed")).toBe(1);
    const records = await bench.reply(id);
    expect(records.map((r) => (r.value === null ? null : echoText(r.value)))).toEqual([
      "streamed",
      null,
    ]);
  });
});
