/**
 * West serving request records: call shapes, deadlines, errors, retries and duplicates,
 * with request records written as north writes them and replies read back from Kafka.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import {
  type EchoServer,
  echoBytes,
  endOf,
  freePort,
  messagesOf,
  replyTopic,
  startEchoServer,
  startWestBench,
  type WestBench,
  waitFor,
} from "./west-harness.ts";

let bench: WestBench;
let echo: EchoServer;

beforeAll(async () => {
  bench = await startWestBench(3);
  echo = await startEchoServer();
  await bench.startWest(`127.0.0.1:${echo.port}`);
});

afterAll(async () => {
  await bench?.close();
  await echo?.close();
});

describe("west", () => {
  it("unary.rpc.metadata", async () => {
    const id = await bench.request({
      messages: ["meta:hello"],
      metadata: [
        ["x-tenant", "blue"],
        ["x-data-bin", "AAECAw=="],
      ],
    });
    const replies = await bench.reply(id);
    expect(messagesOf(replies)).toEqual(["meta:hello"]);
    const [first, end] = replies;
    // Response headers on the first record, trailers on the end tombstone (docs/contract.md: Reply records).
    expect(first?.headers).toEqual(
      expect.arrayContaining([
        ["zilla:correlation-id", id],
        ["meta:x-echo", "1"],
        ["meta:x-tenant", "blue"],
        ["meta:x-data-bin", "AAECAw=="],
      ]),
    );
    expect(end?.value).toBeNull();
    expect(end?.headers).toEqual(
      expect.arrayContaining([
        ["zilla:correlation-id", id],
        ["zilla:status", "0"],
        ["meta:x-trailer", "t"],
      ]),
    );
    expect(end?.headers.some(([n]) => n === "zilla:message")).toBe(false);
    const seen = echo.requests.find((r) => r.messages[0] === "meta:hello");
    expect(seen?.headers.get("x-tenant")).toBe("blue");
    expect(seen?.headers.get("x-data-bin")).toBe("AAECAw==");
    expect(replies.every((r) => r.key === id)).toBe(true);
  });

  it("message.bytes.pass.through", async () => {
    // Field 1 plus fields the echo schema does not know: upstream must get them unchanged.
    const unknownFields = Uint8Array.from([0x0a, 0x02, 0x68, 0x69, 0xf8, 0x01, 0x07]);
    const id = await bench.request({ messages: [unknownFields] });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(0);
    expect(messagesOf(replies)).toEqual(["hi"]);
  });

  it("server.stream.rpc", async () => {
    const id = await bench.request({ method: "ServerStreamingEcho", messages: ["stream:4:s"] });
    const replies = await bench.reply(id);
    expect(messagesOf(replies)).toEqual(["stream:4:s", "stream:4:s", "stream:4:s", "stream:4:s"]);
    expect(replies.at(-1)?.value).toBeNull();
    expect(new Set(replies.map((r) => r.partition)).size).toBe(1);
  });

  it("client.stream.rpc", async () => {
    const id = await bench.request({ method: "ClientStreamingEcho", messages: ["a", "b", "c"] });
    const replies = await bench.reply(id);
    expect(messagesOf(replies)).toEqual(["a,b,c"]);
  });

  it("client.stream.rpc.no.messages", async () => {
    const before = echo.calls.get("ClientStreamingEcho") ?? 0;
    const id = await bench.request({ method: "ClientStreamingEcho", messages: [] });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(0);
    expect(messagesOf(replies)).toEqual([""]);
    expect(echo.calls.get("ClientStreamingEcho")).toBe(before + 1);
  });

  it("unary.rpc.zero.length.message", async () => {
    const id = await bench.request({ messages: [new Uint8Array(0)] });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(0);
    expect(replies.filter((r) => r.value !== null).map((r) => r.value?.byteLength)).toEqual([0]);
  });

  it("bidi.stream.rpc", async () => {
    const id = await bench.request({
      method: "BidirectionalStreamingEcho",
      messages: ["one"],
      end: false,
    });
    // The upstream answers the first message while the request stream is still open.
    await waitFor("first bidi reply", () => (bench.replies.get(id) ?? []).length >= 1);
    await bench.request({ id, method: "BidirectionalStreamingEcho", messages: ["two"] });
    const replies = await bench.reply(id);
    expect(messagesOf(replies)).toEqual(["one", "two"]);
  });

  it("deadline.expired.before.upstream", async () => {
    const before = echo.calls.get("UnaryEcho") ?? 0;
    const id = await bench.request({ messages: ["too late"], deadlineMs: Date.now() - 1_000 });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(4);
    expect(messagesOf(replies)).toEqual([]);
    // A live call after it proves west was serving, so the expired one was refused.
    const live = await bench.request({ messages: ["in time"], deadlineMs: Date.now() + 15_000 });
    expect(endOf(await bench.reply(live)).status).toBe(0);
    expect(echo.calls.get("UnaryEcho")).toBe(before + 1);
    expect(echo.requests.some((r) => r.messages.includes("too late"))).toBe(false);
  });

  it("deadline.time.left.reaches.upstream", async () => {
    const started = Date.now();
    const id = await bench.request({ messages: ["delay:20000:slow"], deadlineMs: started + 1_500 });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(4);
    // Ended by the request's deadline, far earlier than the upstream's 20 s delay.
    expect(Date.now() - started).toBeLessThan(15_000);
    const seen = echo.requests.find((r) => r.messages[0] === "delay:20000:slow");
    const timeout = seen?.headers.get("grpc-timeout") ?? "";
    expect(timeout).toMatch(/^\d+[mu]$/);
    expect(Number.parseInt(timeout, 10)).toBeLessThanOrEqual(
      timeout.endsWith("u") ? 1_500_000 : 1_500,
    );
  });

  it("missing.service.and.method.headers", async () => {
    const before = echo.requests.length;
    const id = "no-service-id";
    const headers: [string, string][] = [
      [defaultCorrelationHeaders.replyTo, replyTopic],
      [defaultCorrelationHeaders.correlationId, id],
    ];
    await bench.produce([
      { key: id, value: echoBytes("x"), headers },
      { key: id, value: null, headers },
    ]);
    const replies = await bench.reply(id);
    expect(replies).toHaveLength(1);
    expect(endOf(replies).status).toBe(13);
    expect(echo.requests.length).toBe(before);
  });

  it("record.without.correlation.id.skipped", async () => {
    await bench.produce([
      { key: "k", value: echoBytes("orphan"), headers: [["zilla:reply-to", replyTopic]] },
    ]);
    const id = await bench.request({ messages: ["after orphan"] });
    expect(endOf(await bench.reply(id)).status).toBe(0);
    expect(echo.requests.some((r) => r.messages.includes("orphan"))).toBe(false);
  });

  it("record.with.an.empty.correlation.id.skipped", async () => {
    // The empty key is the changelog's lease key: no call may have it.
    await bench.request({ id: "", messages: ["empty id"] });
    const id = await bench.request({ messages: ["after empty id"] });
    expect(endOf(await bench.reply(id)).status).toBe(0);
    expect(echo.requests.some((r) => r.messages.includes("empty id"))).toBe(false);
  });

  it("upstream.error.status", async () => {
    const id = await bench.request({ messages: ["error:5:no such echo"] });
    const replies = await bench.reply(id);
    expect(replies).toHaveLength(1);
    expect(endOf(replies)).toEqual({ status: 5, message: "no such echo" });
  });

  it("request.cancelled", async () => {
    const id = await bench.request({ messages: ["delay:20000:cancel me"] });
    await waitFor("upstream call", () =>
      echo.requests.some((r) => r.messages[0] === "delay:20000:cancel me"),
    );
    // North writes the end tombstone once more when its caller cancels.
    await bench.request({ id, messages: [] });
    const replies = await bench.reply(id);
    expect(endOf(replies).status).toBe(1);
  });

  it("duplicate.request.replayed", async () => {
    const id = "idem-key-1-0123456789abcdef";
    const before = echo.calls.get("UnaryEcho") ?? 0;
    await bench.request({ id, messages: ["meta:once"] });
    const first = await bench.reply(id, 1);
    expect(first).toHaveLength(2);
    await bench.request({ id, messages: ["meta:once"] });
    const both = await bench.reply(id, 2);
    expect(both).toHaveLength(4);
    const strip = (r: (typeof both)[number]) => ({
      key: r.key,
      value: r.value,
      headers: r.headers,
    });
    expect(both.slice(2).map(strip)).toEqual(both.slice(0, 2).map(strip));
    expect(echo.calls.get("UnaryEcho")).toBe(before + 1);

    // A duplicate arriving while the first is still running joins it.
    const joined = "idem-key-2-0123456789abcdef";
    await bench.request({ id: joined, messages: ["delay:1000:joined"] });
    await bench.request({ id: joined, messages: ["delay:1000:joined"] });
    const replies = await bench.reply(joined, 1);
    expect(messagesOf(replies)).toContain("delay:1000:joined");
    expect(echo.requests.filter((r) => r.messages[0] === "delay:1000:joined")).toHaveLength(1);
  });
});

describe("west with its upstream down", () => {
  it("upstream.unavailable.then.up", async () => {
    const port = await freePort();
    const local = await startWestBench(1);
    let late: EchoServer | undefined;
    try {
      await local.startWest(`127.0.0.1:${port}`, (c) => {
        c.options.retry = { initialBackoffMs: 50, maxBackoffMs: 200 };
      });
      const id = await local.request({ messages: ["patience"], deadlineMs: Date.now() + 20_000 });
      // Nothing happens for 700 ms: no reply while the upstream is down (the call retries).
      await new Promise((r) => setTimeout(r, 700));
      expect(local.replies.get(id)).toBeUndefined();
      late = await startEchoServer({ port });
      const replies = await local.reply(id);
      expect(endOf(replies).status).toBe(0);
      expect(messagesOf(replies)).toEqual(["patience"]);
      expect(late.calls.get("UnaryEcho")).toBe(1);

      // Still down at the deadline: UNAVAILABLE.
      await late.close();
      late = undefined;
      const doomed = await local.request({ messages: ["never"], deadlineMs: Date.now() + 800 });
      expect(endOf(await local.reply(doomed)).status).toBe(14);
    } finally {
      await late?.close();
      await local.close();
    }
  });
});

describe("west call concurrency", () => {
  it("calls.with.different.ids.run.concurrently", async () => {
    const local = await startWestBench(1);
    const upstream = await startEchoServer();
    try {
      await local.startWest(`127.0.0.1:${upstream.port}`);
      // Same partition, one after the other: the second starts while the first still runs.
      const a = await local.request({ messages: ["delay:3000:a"] });
      const b = await local.request({ messages: ["delay:3000:b"] });
      await waitFor("both calls upstream", () => upstream.requests.length === 2);
      expect(local.replies.get(a)).toBeUndefined();
      expect(local.replies.get(b)).toBeUndefined();
      expect(endOf(await local.reply(a)).status).toBe(0);
      expect(endOf(await local.reply(b)).status).toBe(0);
    } finally {
      await local.close();
      await upstream.close();
    }
  });

  it("calls.bounded.by.max.concurrent.calls", async () => {
    const local = await startWestBench(1);
    const upstream = await startEchoServer();
    try {
      await local.startWest(`127.0.0.1:${upstream.port}`, (c) => {
        c.options.maxConcurrentCalls = 1;
      });
      const a = await local.request({ messages: ["delay:3000:first"] });
      const b = await local.request({ messages: ["second"] });
      await waitFor("first call upstream", () => upstream.requests.length === 1);
      // Nothing happens for 500 ms: the bound is reached, the second call waits for the first.
      await new Promise((r) => setTimeout(r, 500));
      expect(upstream.requests.map((r) => r.messages[0])).toEqual(["delay:3000:first"]);
      expect(local.replies.get(a)).toBeUndefined();
      expect(endOf(await local.reply(b)).status).toBe(0);
      expect(endOf(await local.reply(a)).status).toBe(0);
      expect(upstream.requests.map((r) => r.messages[0])).toEqual(["delay:3000:first", "second"]);
    } finally {
      await local.close();
      await upstream.close();
    }
  });
});
