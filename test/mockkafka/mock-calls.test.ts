/**
 * The gateway on librdkafka's mock cluster (3 brokers, the example's topics): north, west and
 * the echo upstream answer every call shape through a Kafka implementation they were not
 * written with.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockStack, startMockStack } from "../support/mock-stack.ts";

let stack: MockStack;

beforeAll(async () => {
  stack = await startMockStack({ brokers: 3 });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

async function* messages(...texts: string[]) {
  for (const message of texts) yield { message };
}

describe("gateway on the mock cluster", () => {
  it("answers a unary call", async () => {
    const reply = await stack.client.unaryEcho({ message: "mock unary" });
    expect(reply.message).toBe("mock unary");
    expect(stack.echo.requests.some((r) => r.messages[0] === "mock unary")).toBe(true);
  });

  it("answers a server-streaming call with every message in order", async () => {
    const got: string[] = [];
    for await (const r of stack.client.serverStreamingEcho({ message: "stream:4:mock" })) {
      got.push(r.message);
    }
    expect(got).toEqual(Array(4).fill("stream:4:mock"));
  });

  it("answers a client-streaming call with all of its messages", async () => {
    const reply = await stack.client.clientStreamingEcho(messages("a", "b", "c"));
    expect(reply.message).toBe("a,b,c");
  });

  it("answers a bidirectional call message for message", async () => {
    const got: string[] = [];
    for await (const r of stack.client.bidirectionalStreamingEcho(messages("x", "y", "z"))) {
      got.push(r.message);
    }
    expect(got).toEqual(["x", "y", "z"]);
  });

  it("answers calls spread over every request partition", async () => {
    const texts = Array.from({ length: 24 }, (_, i) => `spread-${i}`);
    const replies = await Promise.all(texts.map((message) => stack.client.unaryEcho({ message })));
    expect(replies.map((r) => r.message)).toEqual(texts);
  });
});
