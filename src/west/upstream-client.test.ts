import { once } from "node:events";
import { createSecureServer, createServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { createSelfSignedCertificate } from "../config/self-signed.ts";
import { grpcFrame } from "../grpc/framing.ts";
import { statusOk } from "../grpc/status.ts";
import { type EchoServer, startEchoServer } from "../upstream/echo-server.ts";
import { checkMessageBytes } from "./check-message-bytes.ts";
import type { ResponseFields } from "./response-fields.ts";
import {
  callUpstream,
  type RequestChunk,
  type RequestSource,
  requestSourceOf,
  type UpstreamCall,
} from "./upstream-client.ts";
import { createUpstreamPool, type UpstreamPool } from "./upstream-pool.ts";

const service = "grpc.examples.echo.Echo";
const echoBytes = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));
const textOf = (bytes: Uint8Array) => fromBinary(EchoResponseSchema, bytes).message;

/** One message at a time, each after a wait, then the end alone: the path of a client stream. */
function fromList(items: Uint8Array[]): RequestSource {
  const chunks: RequestChunk[] = items.map((item) => ({
    messages: [checkMessageBytes(item)],
    ended: false,
  }));
  chunks.push({ messages: [], ended: true });
  let ready = false;
  return {
    take() {
      if (!ready) return undefined;
      ready = false;
      return chunks.shift();
    },
    wait: () =>
      new Promise<void>((resolve) =>
        setImmediate(() => {
          ready = true;
          resolve();
        }),
      ),
  };
}

describe("passthrough messages", () => {
  it("accept any well-formed message byte for byte, groups included", () => {
    const bytes = Uint8Array.from([
      0x08, 0x96, 0x01, 0x0b, 0x08, 0x01, 0x0c, 0x15, 1, 2, 3, 4, 0x0a, 0x00,
    ]);
    expect(checkMessageBytes(bytes)).toBe(bytes);
    expect(checkMessageBytes(new Uint8Array(0))).toEqual(new Uint8Array(0));
  });

  it("reject malformed messages", () => {
    const malformed = [
      [0x0a, 0x05, 0x01], // length past the end
      [0x08], // tag without its varint
      [0x0b, 0x08, 0x01], // group without its end
      [0x0c], // end group without a start
      [0x0e, 0x00], // wire type 6
      [0x00, 0x01], // field number 0
      [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // 11-byte varint
    ];
    for (const bytes of malformed) {
      expect(() => checkMessageBytes(Uint8Array.from(bytes)), String(bytes)).toThrow();
    }
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
    const replies: { text: string; header: ResponseFields | undefined }[] = [];
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

  it("calls an upstream over TLS with the configured trust anchor and SNI", async () => {
    const { cert, key } = createSelfSignedCertificate();
    const server = createSecureServer({ cert, key, ALPNProtocols: ["h2"] });
    server.on("stream", (stream, headers) => {
      stream.on("data", () => {});
      stream.on("end", () => {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc" },
          {
            waitForTrailers: true,
          },
        );
        stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(echoBytes(String(headers[":path"]))));
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const tlsPool = createUpstreamPool();
    try {
      const replies: string[] = [];
      const result = await callUpstream({
        transport: tlsPool.transportFor({
          scheme: "https",
          authority: `127.0.0.1:${port}`,
          tls: { ca: [cert], sni: "localhost" },
        }),
        service,
        method: "UnaryEcho",
        metadata: [],
        deadlineMs: Date.now() + 10_000,
        signal: new AbortController().signal,
        requests: () => fromList([echoBytes("over tls")]),
        retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
        onMessage: (bytes) => replies.push(textOf(bytes)),
      });
      expect(result.code).toBe(statusOk);
      expect(replies).toEqual([`/${service}/UnaryEcho`]);
    } finally {
      tlsPool.close();
      server.close();
    }
  });

  it("ends calls to an upstream that never answers at their own deadlines", async () => {
    // The server takes every request and says nothing: only west's deadline ends the call.
    const server = createServer();
    const resets: number[] = [];
    server.on("stream", (stream) => {
      stream.on("data", () => {});
      stream.on("close", () => resets.push(stream.rstCode));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const localPool = createUpstreamPool();
    const transport = localPool.transportFor({
      scheme: "http",
      authority: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    });
    const started = Date.now();
    const attempt = (timeoutMs: number) =>
      callUpstream({
        transport,
        service,
        method: "UnaryEcho",
        metadata: [],
        deadlineMs: started + timeoutMs,
        signal: new AbortController().signal,
        requests: () => fromList([echoBytes("anyone?")]),
        retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
        onMessage: () => {},
      }).then((result) => ({ result, afterMs: Date.now() - started }));
    try {
      // Later deadline first: each call ends at its own time, not at the earliest one's.
      const [late, early] = await Promise.all([attempt(700), attempt(250)]);
      expect(early.result).toMatchObject({ code: Code.DeadlineExceeded, attempts: 1 });
      expect(late.result).toMatchObject({ code: Code.DeadlineExceeded, attempts: 1 });
      expect(early.afterMs).toBeGreaterThanOrEqual(240);
      expect(late.afterMs).toBeGreaterThanOrEqual(690);
      // Apart by about the deadlines' difference (450 ms), however loaded the machine.
      expect(late.afterMs - early.afterMs).toBeGreaterThan(200);
      // Each stream was reset (CANCEL), so the upstream hears that the caller gave up.
      await vi.waitFor(() => expect(resets).toEqual([8, 8]));
    } finally {
      localPool.close();
      server.close();
    }
  });

  it("maps an answer that is not gRPC by its HTTP status", async () => {
    const server = createServer();
    server.on("stream", (stream) => {
      stream.respond({ ":status": 404, "content-type": "text/plain" });
      stream.end("not here");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const localPool = createUpstreamPool();
    try {
      const result = await callUpstream({
        transport: localPool.transportFor({
          scheme: "http",
          authority: `127.0.0.1:${(server.address() as AddressInfo).port}`,
        }),
        service,
        method: "UnaryEcho",
        metadata: [],
        deadlineMs: Date.now() + 10_000,
        signal: new AbortController().signal,
        requests: () => fromList([echoBytes("x")]),
        retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
        onMessage: () => {},
      });
      expect(result).toMatchObject({ code: Code.Unimplemented, message: "HTTP 404", attempts: 1 });
    } finally {
      localPool.close();
      server.close();
    }
  });

  it("sends a message and the end of the request in one chunk", async () => {
    const { replies, result } = call("UnaryEcho", [], {
      requests: () => requestSourceOf([echoBytes("at once")]),
    });
    expect((await result).code).toBe(statusOk);
    expect(replies.map((x) => x.text)).toEqual(["at once"]);
  });

  it("retries an unreachable upstream until it is up, then answers", async () => {
    const probe = await startEchoServer();
    const port = probe.port;
    await probe.close();
    const health: string[] = [];
    const localPool = createUpstreamPool((authority) => ({
      unreachable: (reason) => health.push(`${authority} unreachable: ${reason}`),
      reached: () => health.push(`${authority} reached`),
    }));
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
      // Time passes on purpose: the call keeps retrying for 400 ms with nothing listening.
      await new Promise((r) => setTimeout(r, 400));
      const late = await startEchoServer({ port });
      try {
        const r = await result;
        expect(r.code).toBe(statusOk);
        expect(r.attempts).toBeGreaterThan(1);
        expect(replies).toEqual(["late"]);
        // Each failed attempt was reported as it happened, then the one that got through.
        expect(health).toHaveLength(r.attempts);
        expect(health.at(-1)).toBe(`127.0.0.1:${port} reached`);
        for (const line of health.slice(0, -1)) {
          expect(line).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} unreachable: .*ECONNREFUSED`));
        }
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
      // The status message says what was tried, for how long, and what the last attempt met.
      expect(r.message).toMatch(
        new RegExp(
          `^upstream 127\\.0\\.0\\.1:${port} unreachable after ${r.attempts} attempts over [\\d.]+ s: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`,
        ),
      );
    } finally {
      localPool.close();
    }
  });
});
