import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Empty } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type EchoServer, startEchoServer } from "../upstream/echo-server.ts";
import {
  bytesFromMessage,
  callUpstream,
  createUpstreamPool,
  messageFromBytes,
  statusOk,
  type UpstreamCall,
  type UpstreamPool,
} from "./upstream-client.ts";

const service = "grpc.examples.echo.Echo";
const echoBytes = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));
const textOf = (bytes: Uint8Array) => fromBinary(EchoResponseSchema, bytes).message;

async function* fromList(items: Uint8Array[]): AsyncIterable<Empty> {
  for (const item of items) yield messageFromBytes(item);
}

describe("passthrough messages", () => {
  it("re-emit unknown fields byte for byte", () => {
    const bytes = Uint8Array.from([
      0x08, 0x96, 0x01, 0x0b, 0x08, 0x01, 0x0c, 0x15, 1, 2, 3, 4, 0x0a, 0x00,
    ]);
    expect(bytesFromMessage(messageFromBytes(bytes))).toEqual(bytes);
    expect(bytesFromMessage(messageFromBytes(new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });
});

describe("callUpstream", () => {
  let echo: EchoServer;
  let pool: UpstreamPool;
  beforeAll(async () => {
    echo = await startEchoServer();
    pool = createUpstreamPool();
  });
  afterAll(async () => {
    pool.close();
    await echo.close();
  });

  const call = (method: string, requests: Uint8Array[], extra: Partial<UpstreamCall> = {}) => {
    const replies: { text: string; header: Headers | undefined }[] = [];
    const result = callUpstream({
      transport: pool.transportFor({ scheme: "http", authority: `127.0.0.1:${echo.port}` }),
      service,
      method,
      metadata: [],
      deadlineMs: Date.now() + 10_000,
      signal: new AbortController().signal,
      requests: () => fromList(requests),
      retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
      onMessage: (bytes, header) => replies.push({ text: textOf(bytes), header }),
      ...extra,
    });
    return { replies, result };
  };

  it("calls a unary method with header metadata on the first message and trailers at the end", async () => {
    const { replies, result } = call("UnaryEcho", [echoBytes("meta:hi")], {
      metadata: [
        ["x-one", "1"],
        ["x-data-bin", "AAEC"],
      ],
    });
    const r = await result;
    expect(r.code).toBe(statusOk);
    expect(replies.map((x) => x.text)).toEqual(["meta:hi"]);
    expect(replies[0]?.header?.get("x-echo")).toBe("1");
    expect(replies[0]?.header?.get("x-data-bin")).toBe("AAEC");
    expect(r.trailer.get("x-trailer")).toBe("t");
    expect(echo.requests.at(-1)?.headers.get("x-one")).toBe("1");
  });

  it("streams server replies and sends a client stream with no messages", async () => {
    const streamed = call("ServerStreamingEcho", [echoBytes("stream:3:s")]);
    expect((await streamed.result).code).toBe(statusOk);
    expect(streamed.replies.map((x) => x.text)).toEqual(["stream:3:s", "stream:3:s", "stream:3:s"]);
    expect(streamed.replies[1]?.header).toBeUndefined();

    const before = echo.calls.get("ClientStreamingEcho") ?? 0;
    const empty = call("ClientStreamingEcho", []);
    expect((await empty.result).code).toBe(statusOk);
    expect(empty.replies.map((x) => x.text)).toEqual([""]);
    expect(echo.calls.get("ClientStreamingEcho")).toBe(before + 1);
  });

  it("sends a zero-length message upstream", async () => {
    const { replies, result } = call("UnaryEcho", [new Uint8Array(0)]);
    expect((await result).code).toBe(statusOk);
    expect(replies.map((x) => x.text)).toEqual([""]);
    expect(echo.requests.at(-1)?.messages).toEqual([""]);
  });

  it("carries an upstream error's code and message", async () => {
    const { replies, result } = call("UnaryEcho", [echoBytes("error:9:not now")]);
    const r = await result;
    expect(r).toMatchObject({ code: Code.FailedPrecondition, message: "not now", attempts: 1 });
    expect(replies).toEqual([]);
    expect(r.header?.get("x-echo")).toBe("1");
  });

  it("gives the upstream only the time left and reports DEADLINE_EXCEEDED", async () => {
    const { result } = call("UnaryEcho", [echoBytes("delay:10000:slow")], {
      deadlineMs: Date.now() + 300,
    });
    expect((await result).code).toBe(Code.DeadlineExceeded);
  });

  it("stops when cancelled", async () => {
    const abort = new AbortController();
    const { result } = call("UnaryEcho", [echoBytes("delay:10000:slow")], { signal: abort.signal });
    setTimeout(() => abort.abort(), 100);
    expect((await result).code).toBe(Code.Canceled);
  });

  it("retries an unreachable upstream until it is up, then answers", async () => {
    const probe = await startEchoServer();
    const port = probe.port;
    await probe.close();
    const localPool = createUpstreamPool();
    try {
      const replies: string[] = [];
      const result = callUpstream({
        transport: localPool.transportFor({ scheme: "http", authority: `127.0.0.1:${port}` }),
        service,
        method: "UnaryEcho",
        metadata: [],
        deadlineMs: Date.now() + 20_000,
        signal: new AbortController().signal,
        requests: () => fromList([echoBytes("late")]),
        retry: { initialBackoffMs: 20, maxBackoffMs: 100 },
        onMessage: (bytes) => replies.push(textOf(bytes)),
      });
      await new Promise((r) => setTimeout(r, 400));
      const late = await startEchoServer({ port });
      try {
        const r = await result;
        expect(r.code).toBe(statusOk);
        expect(r.attempts).toBeGreaterThan(1);
        expect(replies).toEqual(["late"]);
      } finally {
        await late.close();
      }
    } finally {
      localPool.close();
    }
  });

  it("answers UNAVAILABLE when the upstream stays down until the deadline", async () => {
    const probe = await startEchoServer();
    const port = probe.port;
    await probe.close();
    const localPool = createUpstreamPool();
    try {
      const r = await callUpstream({
        transport: localPool.transportFor({ scheme: "http", authority: `127.0.0.1:${port}` }),
        service,
        method: "UnaryEcho",
        metadata: [],
        deadlineMs: Date.now() + 500,
        signal: new AbortController().signal,
        requests: () => fromList([echoBytes("never")]),
        retry: { initialBackoffMs: 20, maxBackoffMs: 100 },
        onMessage: () => {},
      });
      expect(r.code).toBe(Code.Unavailable);
      expect(r.attempts).toBeGreaterThan(1);
    } finally {
      localPool.close();
    }
  });
});
