import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type EchoServer, parseEchoHooks, startEchoServer } from "./echo-server.ts";

describe("parseEchoHooks", () => {
  it("reads prefixes in any order", () => {
    expect(parseEchoHooks("delay:5:meta:stream:3:hi")).toEqual({
      meta: true,
      delayMs: 5,
      streamCount: 3,
    });
    expect(parseEchoHooks("error:5:not here")).toEqual({
      meta: false,
      error: { code: Code.NotFound, text: "not here" },
    });
    expect(parseEchoHooks("plain")).toEqual({ meta: false });
  });
});

describe("echo server", () => {
  let echo: EchoServer;
  let client: ReturnType<typeof createClient<typeof Echo>>;
  beforeAll(async () => {
    echo = await startEchoServer();
    client = createClient(Echo, createGrpcTransport({ baseUrl: `http://127.0.0.1:${echo.port}` }));
  });
  afterAll(() => echo.close());

  it("serves the four call shapes", async () => {
    expect((await client.unaryEcho({ message: "hi" })).message).toBe("hi");
    const streamed: string[] = [];
    for await (const r of client.serverStreamingEcho({ message: "stream:3:x" }))
      streamed.push(r.message);
    expect(streamed).toEqual(["stream:3:x", "stream:3:x", "stream:3:x"]);
    const tenfold: string[] = [];
    for await (const r of client.serverStreamingEcho({ message: "y" })) tenfold.push(r.message);
    expect(tenfold).toHaveLength(10);
    async function* three() {
      yield { message: "a" };
      yield { message: "b" };
      yield { message: "c" };
    }
    expect((await client.clientStreamingEcho(three())).message).toBe("a,b,c");
    const bidi: string[] = [];
    for await (const r of client.bidirectionalStreamingEcho(three())) bidi.push(r.message);
    expect(bidi).toEqual(["a", "b", "c"]);
    expect(echo.calls.get("UnaryEcho")).toBe(1);
    expect(echo.calls.get("ServerStreamingEcho")).toBe(2);
    expect(echo.requests.find((r) => r.method === "ClientStreamingEcho")?.messages).toEqual([
      "a",
      "b",
      "c",
    ]);
  });

  it("fails with the requested code and message", async () => {
    const err = await client.unaryEcho({ message: "error:7:go away" }).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe("go away");
  });

  it("copies x-* metadata into response headers and sets a trailer", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    await client.unaryEcho(
      { message: "meta:hi" },
      {
        headers: { "x-one": "1", "x-bin-bin": "AQI=" },
        onHeader: (h) => {
          header = h;
        },
        onTrailer: (t) => {
          trailer = t;
        },
      },
    );
    expect(header?.get("x-one")).toBe("1");
    expect(header?.get("x-bin-bin")).toBe("AQI=");
    expect(header?.get("x-echo")).toBe("1");
    expect(trailer?.get("x-trailer")).toBe("t");
  });

  it("stops a delayed call when the client gives up", async () => {
    const err = await client
      .unaryEcho({ message: "delay:60000:slow" }, { timeoutMs: 200 })
      .catch((e) => e);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
  });
});
