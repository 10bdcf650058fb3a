import * as http2 from "node:http2";
import * as net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  Echo,
  EchoRequestSchema,
  EchoResponseSchema,
} from "../../gen/grpc/examples/echo/echo_pb.ts";
import { grpcFrame } from "../grpc/framing.ts";
import { parseEchoHooks } from "./echo-hooks.ts";
import { type EchoServer, startEchoServer } from "./echo-server.ts";

/** The runtime's HTTP/2 server, and the gateway's own session (the benchmark's upstream). */
const engines = ["node", "own"] as const;

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

describe.each(engines)("echo server (%s HTTP/2)", (engine) => {
  let echo: EchoServer;
  let client: ReturnType<typeof createClient<typeof Echo>>;
  beforeAll(async () => {
    echo = await startEchoServer({ http2: engine });
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

  it("serves Connect, gRPC-Web and gzip-compressed gRPC through connect-es", async () => {
    const baseUrl = `http://127.0.0.1:${echo.port}`;
    const transports = {
      connect: createConnectTransport({ baseUrl, httpVersion: "2" }),
      "connect json": createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }),
      "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
      "grpc gzip": createGrpcTransport({
        baseUrl,
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const other = createClient(Echo, transport);
      const before = echo.calls.get("UnaryEcho") ?? 0;
      let header: Headers | undefined;
      const reply = await other.unaryEcho(
        { message: `meta:via ${name}` },
        {
          headers: { "x-via": name },
          onHeader: (h) => {
            header = h;
          },
        },
      );
      expect(reply.message, name).toBe(`meta:via ${name}`);
      expect(header?.get("x-via"), name).toBe(name);
      expect(echo.calls.get("UnaryEcho"), name).toBe(before + 1);
      expect(echo.requests.at(-1)?.messages, name).toEqual([`meta:via ${name}`]);
      const err = await other.unaryEcho({ message: "error:5:gone" }).catch((e) => e);
      expect((err as ConnectError).code, name).toBe(Code.NotFound);
    }
  });
});

/** What a raw HTTP/2 gRPC call got back; status from the trailers or a trailers-only header. */
interface RawReply {
  httpStatus: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  messages: string[];
}

const echoRequest = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));

/** Splits a response body into its messages' texts. */
function responseTexts(body: Buffer): string[] {
  const texts: string[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    texts.push(fromBinary(EchoResponseSchema, body.subarray(at + 5, at + 5 + length)).message);
    at += 5 + length;
  }
  return texts;
}

/** A gRPC request's stream, opened by hand at `path`. */
function openRawCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
): http2.ClientHttp2Stream {
  return session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
}

/** A gRPC call by hand: headers, then each body chunk in turn, then the end of the request. */
function rawCall(
  session: http2.ClientHttp2Session,
  method: string,
  body: Uint8Array[],
  headers: http2.OutgoingHttpHeaders = {},
): Promise<RawReply> {
  const stream = openRawCall(session, `/grpc.examples.echo.Echo/${method}`, headers);
  for (const chunk of body) stream.write(chunk);
  stream.end();
  return readReply(stream);
}

function readReply(stream: http2.ClientHttp2Stream): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      responseHeaders = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      const body = Buffer.concat(chunks);
      const statusOf = (h: http2.IncomingHttpHeaders, name: string) =>
        (h[name] as string | undefined) ?? undefined;
      const contentType = String(responseHeaders["content-type"] ?? "");
      resolve({
        httpStatus: Number(responseHeaders[":status"] ?? 0),
        headers: responseHeaders,
        trailers,
        grpcStatus: statusOf(trailers, "grpc-status") ?? statusOf(responseHeaders, "grpc-status"),
        grpcMessage:
          statusOf(trailers, "grpc-message") ?? statusOf(responseHeaders, "grpc-message"),
        messages: contentType.startsWith("application/grpc") ? responseTexts(body) : [],
      });
    });
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!check()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 10 },
  );
}

describe.each(engines)(
  "echo server, native gRPC path over a raw HTTP/2 client (%s HTTP/2)",
  (engine) => {
    let echo: EchoServer;
    let session: http2.ClientHttp2Session;
    beforeAll(async () => {
      echo = await startEchoServer({ http2: engine });
      session = http2.connect(`http://127.0.0.1:${echo.port}`);
    });
    afterAll(async () => {
      session.close();
      await echo.close();
    });

    const frame = (text: string) => grpcFrame(echoRequest(text));

    it("unary.rpc: echoes the text and logs headers and message", async () => {
      const before = echo.calls.get("UnaryEcho") ?? 0;
      const reply = await rawCall(session, "UnaryEcho", [frame("héllo ✓ \u{1f600}")], {
        "x-tenant": "blue",
        "grpc-timeout": "30S",
      });
      expect(reply).toMatchObject({ httpStatus: 200, grpcStatus: "0", messages: ["héllo ✓ 😀"] });
      expect(reply.headers["content-type"]).toBe("application/grpc+proto");
      expect(reply.headers["x-echo"]).toBe("1");
      // Without the meta hook, request metadata is not echoed.
      expect(reply.headers["x-tenant"]).toBeUndefined();
      expect(echo.calls.get("UnaryEcho")).toBe(before + 1);
      const log = echo.requests.at(-1);
      expect(log?.method).toBe("UnaryEcho");
      expect(log?.messages).toEqual(["héllo ✓ 😀"]);
      expect(log?.headers.get("x-tenant")).toBe("blue");
      expect(log?.headers.get("grpc-timeout")).toBe("30S");
      const names: string[] = [];
      log?.headers.forEach((_, name) => {
        names.push(name);
      });
      expect(names.filter((name) => name.startsWith(":"))).toEqual([]);
      expect(names).toContain("te");
    });

    it("unary.rpc: keeps a leading byte order mark and a large message intact", async () => {
      const big = `\u{feff}${"0123456789".repeat(30_000)}`;
      const reply = await rawCall(session, "UnaryEcho", [frame(big)]);
      expect(reply.grpcStatus).toBe("0");
      expect(reply.messages).toEqual([big]);
    });

    it("unary.rpc: an empty message gives an empty response", async () => {
      const reply = await rawCall(session, "UnaryEcho", [grpcFrame(new Uint8Array(0))]);
      expect(reply).toMatchObject({ grpcStatus: "0", messages: [""] });
      expect(echo.requests.at(-1)?.messages).toEqual([""]);
    });

    it("unary.rpc: skips unknown fields of every wire type, groups included", async () => {
      const bytes = Buffer.concat([
        Buffer.from([0x10, 0x96, 0x01]), // field 2, varint
        Buffer.from([0x19, 1, 2, 3, 4, 5, 6, 7, 8]), // field 3, fixed64
        Buffer.from([0x23, 0x08, 0x01, 0x0a, 0x01, 0x78, 0x24]), // field 4: a group with a field 1
        Buffer.from([0x0a, 0x02, 0x68, 0x69]), // field 1: "hi"
        Buffer.from([0x2d, 1, 2, 3, 4]), // field 5, fixed32
        Buffer.from([0x32, 0x01, 0x00]), // field 6, bytes
      ]);
      const reply = await rawCall(session, "UnaryEcho", [grpcFrame(bytes)]);
      expect(reply).toMatchObject({ grpcStatus: "0", messages: ["hi"] });
    });

    it("unary.rpc: a message split across chunks is put back together", async () => {
      const whole = frame("split in three");
      const reply = await rawCall(session, "UnaryEcho", [
        whole.subarray(0, 2),
        whole.subarray(2, 9),
        whole.subarray(9),
      ]);
      expect(reply.messages).toEqual(["split in three"]);
    });

    it("unary.rpc.error: code and message from the error hook, header and trailers kept", async () => {
      const reply = await rawCall(session, "UnaryEcho", [frame("meta:error:9:not 100% ready")], {
        "x-one": "1",
      });
      expect(reply.grpcStatus).toBe(String(Code.FailedPrecondition));
      expect(decodeURIComponent(reply.grpcMessage ?? "")).toBe("not 100% ready");
      expect(reply.messages).toEqual([]);
      expect(reply.headers["x-echo"]).toBe("1");
      expect(reply.headers["x-one"]).toBe("1");
      expect(reply.trailers["x-trailer"]).toBe("t");
    });

    it("meta hook: copies x-* metadata, -bin values as sent, and sets x-trailer", async () => {
      const reply = await rawCall(session, "UnaryEcho", [frame("meta:hi")], {
        "x-one": "1",
        "x-data-bin": "AAECAw==",
        authorization: "secret",
      });
      expect(reply.headers["x-one"]).toBe("1");
      expect(reply.headers["x-data-bin"]).toBe("AAECAw==");
      expect(reply.headers.authorization).toBeUndefined();
      expect(reply.headers["x-echo"]).toBe("1");
      expect(reply.trailers).toMatchObject({ "grpc-status": "0", "x-trailer": "t" });
      expect(reply.messages).toEqual(["meta:hi"]);
    });

    it("delay hook: answers after the delay", async () => {
      const started = Date.now();
      const reply = await rawCall(session, "UnaryEcho", [frame("delay:300:later")]);
      expect(reply.messages).toEqual(["delay:300:later"]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    });

    it("delay hook: grpc-timeout ends a delayed call with DEADLINE_EXCEEDED", async () => {
      const started = Date.now();
      const reply = await rawCall(session, "UnaryEcho", [frame("delay:60000:slow")], {
        "grpc-timeout": "200m",
      });
      expect(reply.grpcStatus).toBe(String(Code.DeadlineExceeded));
      expect(reply.messages).toEqual([]);
      // Ended by the 200 ms deadline, not the 60 s delay (and well within the test's timeout,
      // so that the bound can fail): 10 s is room for a loaded machine.
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it("delay hook: a client cancel stops the call, so nothing behind the delay is handled", async () => {
      const stream = openRawCall(session, "/grpc.examples.echo.Echo/ClientStreamingEcho");
      stream.on("error", () => {});
      stream.write(Buffer.concat([frame("delay:500:cancel me"), frame("behind the delay")]));
      const log = () => echo.requests.find((r) => r.messages[0] === "delay:500:cancel me");
      await waitFor("the delayed message", () => log() !== undefined);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      // Nothing happens for 1.5 s, well past the delay: a call still running would have logged
      // the second message.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(log()?.messages).toEqual(["delay:500:cancel me"]);
    });

    it("stream hook: server.stream.rpc sends n messages, 10 by default, 0 allowed", async () => {
      const three = await rawCall(session, "ServerStreamingEcho", [frame("stream:3:s")]);
      expect(three).toMatchObject({
        grpcStatus: "0",
        messages: ["stream:3:s", "stream:3:s", "stream:3:s"],
      });
      const ten = await rawCall(session, "ServerStreamingEcho", [frame("t")]);
      expect(ten.messages).toEqual(Array(10).fill("t"));
      const none = await rawCall(session, "ServerStreamingEcho", [frame("stream:0:meta:")]);
      expect(none).toMatchObject({ grpcStatus: "0", messages: [] });
      expect(none.headers["x-echo"]).toBe("1");
      expect(none.trailers["x-trailer"]).toBe("t");
    });

    it("client.stream.rpc: joins the texts, logs each as it arrives, empty stream allowed", async () => {
      const stream = openRawCall(session, "/grpc.examples.echo.Echo/ClientStreamingEcho");
      const reply = readReply(stream);
      stream.write(frame("first"));
      await waitFor("the first message logged", () =>
        echo.requests.some((r) => r.messages[0] === "first"),
      );
      stream.end(frame("second"));
      expect(await reply).toMatchObject({ grpcStatus: "0", messages: ["first,second"] });
      expect(echo.requests.find((r) => r.messages[0] === "first")?.messages).toEqual([
        "first",
        "second",
      ]);
      const empty = await rawCall(session, "ClientStreamingEcho", []);
      expect(empty).toMatchObject({ grpcStatus: "0", messages: [""] });
    });

    it("client.stream.rpc.error: the error hook on a later message ends the call", async () => {
      const reply = await rawCall(session, "ClientStreamingEcho", [
        frame("ok"),
        frame("error:3:bad second"),
        frame("never"),
      ]);
      expect(reply).toMatchObject({ grpcStatus: "3", messages: [] });
      expect(decodeURIComponent(reply.grpcMessage ?? "")).toBe("bad second");
      expect(echo.requests.find((r) => r.messages[0] === "ok")?.messages).toEqual([
        "ok",
        "error:3:bad second",
      ]);
    });

    it("bidi.stream.rpc: answers each message while the request stream is open", async () => {
      const stream = openRawCall(session, "/grpc.examples.echo.Echo/BidirectionalStreamingEcho");
      const reply = readReply(stream);
      const seen: string[] = [];
      stream.on("data", (chunk: Buffer) => seen.push(...responseTexts(chunk)));
      stream.write(frame("meta:one"));
      await waitFor("the first reply", () => seen.length === 1);
      stream.end(frame("two"));
      const done = await reply;
      expect(done).toMatchObject({ grpcStatus: "0", messages: ["meta:one", "two"] });
      expect(done.trailers["x-trailer"]).toBe("t");
    });

    it("unknown method or service: UNIMPLEMENTED, and not counted as a call", async () => {
      const calls = [...echo.calls.values()].reduce((a, b) => a + b, 0);
      const method = await rawCall(session, "NoSuchEcho", [frame("x")]);
      expect(method).toMatchObject({ httpStatus: 200, grpcStatus: String(Code.Unimplemented) });
      expect(method.grpcMessage).toContain("NoSuchEcho");
      const stream = openRawCall(session, "/grpc.examples.echo.Nope/UnaryEcho");
      stream.end(frame("x"));
      expect((await readReply(stream)).grpcStatus).toBe(String(Code.Unimplemented));
      // A name the map of methods must not find through an object's prototype.
      const proto = await rawCall(session, "constructor", [frame("x")]);
      expect(proto.grpcStatus).toBe(String(Code.Unimplemented));
      expect([...echo.calls.values()].reduce((a, b) => a + b, 0)).toBe(calls);
    });

    it("not gRPC: an unsupported content type is refused with HTTP 415", async () => {
      const reply = await rawCall(session, "UnaryEcho", [frame("x")], {
        "content-type": "text/plain",
      });
      expect(reply.httpStatus).toBe(415);
    });

    it("malformed requests end with a status and a message", async () => {
      const cases: [string, Uint8Array[], http2.OutgoingHttpHeaders, Code][] = [
        ["truncated frame", [frame("whole").subarray(0, 7)], {}, Code.InvalidArgument],
        ["bad protobuf", [grpcFrame(Uint8Array.from([0x0a, 0x05, 0x01]))], {}, Code.Internal],
        ["field 1 not a string", [grpcFrame(Uint8Array.from([0x08, 0x01]))], {}, Code.Internal],
        ["no message", [], {}, Code.Unimplemented],
        ["two messages", [frame("a"), frame("b")], {}, Code.Unimplemented],
        ["bad grpc-timeout", [frame("a")], { "grpc-timeout": "soon" }, Code.InvalidArgument],
        ["compressed without grpc-encoding", [compressedFrame()], {}, Code.Internal],
        // Any grpc-encoding goes to connect-es, which knows gzip and br only.
        [
          "unknown grpc-encoding",
          [compressedFrame()],
          { "grpc-encoding": "snappy" },
          Code.Unimplemented,
        ],
      ];
      for (const [name, body, headers, code] of cases) {
        const reply = await rawCall(session, "UnaryEcho", body, headers);
        expect(reply.grpcStatus, name).toBe(String(code));
        expect(reply.grpcMessage, name).toBeTruthy();
        expect(reply.messages, name).toEqual([]);
      }
      // The session survives them all.
      expect((await rawCall(session, "UnaryEcho", [frame("still here")])).messages).toEqual([
        "still here",
      ]);
    });
  },
);

/** A frame with the compressed flag set (its bytes do not matter: they are never read). */
function compressedFrame(): Uint8Array {
  const out = grpcFrame(echoRequest("x"));
  out[0] = 1;
  return out;
}

describe("echo server over the gateway's own HTTP/2 session", () => {
  let echo: EchoServer;
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    echo = await startEchoServer({ http2: "own" });
    session = http2.connect(`http://127.0.0.1:${echo.port}`);
  });
  afterAll(async () => {
    session.close();
    await echo.close();
  });

  it("sends a unary answer (headers, message, trailers) in one socket write", async () => {
    const frame = (text: string) => grpcFrame(echoRequest(text));
    await rawCall(session, "UnaryEcho", [frame("warm")]);
    const write = vi.spyOn(net.Socket.prototype, "write");
    let writes: number[];
    try {
      const reply = await rawCall(session, "UnaryEcho", [frame("one write")]);
      expect(reply).toMatchObject({ grpcStatus: "0", messages: ["one write"] });
      writes = write.mock.calls
        .filter((_, i) => (write.mock.contexts[i] as net.Socket).localPort === echo.port)
        .map(([chunk]) => (chunk as Uint8Array).length);
    } finally {
      write.mockRestore();
    }
    // Before: HEADERS in one write, DATA and the trailers in another.
    expect(writes).toHaveLength(1);
  });
});
