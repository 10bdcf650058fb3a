/**
 * West checks what Kafka hands it (issue 13.4): any producer can write the request topic,
 * so method names that are not proto names never reach the upstream's path, a request larger
 * than the binding's limit is answered RESOURCE_EXHAUSTED, and a deadline far away is
 * clamped to what a timer can wait instead of overflowing into an immediate one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import {
  type EchoServer,
  echoBytes,
  endOf,
  replyTopic,
  startEchoServer,
  startWestBench,
  type WestBench,
} from "./west-harness.ts";

const limitBytes = 1024;
let bench: WestBench;
let echo: EchoServer;

beforeAll(async () => {
  bench = await startWestBench(1);
  echo = await startEchoServer();
  await bench.startWest(`127.0.0.1:${echo.port}`, (c) => {
    c.options.maxMessageBytes = limitBytes;
  });
});

afterAll(async () => {
  await bench?.close();
  await echo?.close();
});

describe("west request checks", () => {
  it.each([
    [
      "grpc.examples.echo.Echo",
      "UnaryEcho/../../grpc.health.v1.Health/Check",
      /^method ".*" is not a proto method name$/,
    ],
    ["grpc.examples.echo.Echo", "..", /^method "\.\." is not a proto method name$/],
    [
      "grpc.examples.echo.Echo/../grpc.health.v1.Health",
      "Check",
      /^service ".*" is not a proto name$/,
    ],
  ])("path.trick.%s/%s.refused", async (service, method, message) => {
    const before = echo.requests.length;
    const id = `trick-${Math.random()}`;
    const headers: [string, string][] = [
      [defaultCorrelationHeaders.service, service],
      [defaultCorrelationHeaders.method, method],
      [defaultCorrelationHeaders.replyTo, replyTopic],
      [defaultCorrelationHeaders.correlationId, id],
    ];
    await bench.produce([
      { key: id, value: echoBytes("trick"), headers },
      { key: id, value: null, headers },
    ]);
    const end = endOf(await bench.reply(id));
    expect(end.status).toBe(12);
    expect(end.message).toMatch(message);
    expect(echo.requests.length).toBe(before);
  });

  it("oversized.request.record.answered.resource.exhausted", async () => {
    const before = echo.requests.length;
    const id = await bench.request({ messages: [echoBytes("x".repeat(2 * limitBytes))] });
    const end = endOf(await bench.reply(id));
    expect(end.status).toBe(8);
    expect(end.message).toMatch(/^request message of \d+ bytes exceeds the limit of 1024 bytes$/);
    expect(echo.requests.length).toBe(before);
    // A message within the limit passes.
    const fits = await bench.request({ messages: ["fits"] });
    expect(endOf(await bench.reply(fits)).status).toBe(0);
  });

  it("oversized.later.message.ends.the.call.resource.exhausted", async () => {
    const id = await bench.request({
      method: "ClientStreamingEcho",
      messages: ["first", echoBytes("y".repeat(2 * limitBytes))],
    });
    expect(endOf(await bench.reply(id)).status).toBe(8);
    // A unary request whose messages together pass the limit.
    const unary = await bench.request({
      messages: [echoBytes("a".repeat(600)), echoBytes("b".repeat(600))],
    });
    const end = endOf(await bench.reply(unary));
    expect(end).toEqual({
      status: 8,
      message: expect.stringMatching(/^request of \d+ bytes exceeds/),
    });
  });

  it.each([
    ["ten.years", 10 * 365 * 86_400_000],
    ["600.hours", 600 * 3_600_000],
  ])("deadline.%s.away.is.clamped.not.expired", async (_name, aheadMs) => {
    const id = await bench.request({
      messages: ["far deadline"],
      deadlineMs: Date.now() + aheadMs,
    });
    expect(endOf(await bench.reply(id)).status).toBe(0);
    const seen = echo.requests.findLast((r) => r.messages[0] === "far deadline");
    // The upstream got a grpc-timeout of at most about 24.8 days (2^31 − 1 ms, in whole seconds).
    const timeout = seen?.headers.get("grpc-timeout") ?? "";
    expect(timeout).toMatch(/^\d{1,8}[mS]$/);
    const ms = Number.parseInt(timeout, 10) * (timeout.endsWith("S") ? 1000 : 1);
    expect(ms).toBeLessThanOrEqual(2 ** 31 + 1000);
    expect(ms).toBeGreaterThan(24 * 86_400_000);
  });
});
