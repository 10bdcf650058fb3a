/**
 * North's call scenarios over real sockets: a Connect gRPC client (HTTP/2) calls north,
 * north writes request records to the embedded broker, a kafkajs responder answers like
 * west would, north relays the reply.
 */
import { createHash } from "node:crypto";
import http2 from "node:http2";
import * as net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { EchoRequestSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { grpcFrame } from "../../src/grpc/framing.ts";
import {
  CORRELATION_ID,
  DEADLINE,
  METHOD,
  REPLY_TO,
  SERVICE,
} from "../../src/kafka/header-names.ts";
import { header, type NorthFixture, readTopic, startNorthFixture } from "./north-fixture.ts";

const onewayTopic = "echo-events";
let fx: NorthFixture;

beforeAll(async () => {
  fx = await startNorthFixture((config) => {
    // Oneway: selected by metadata, ahead of the example route.
    config.routes.unshift({
      when: [{ method: "grpc.examples.echo.Echo/UnaryEcho", metadata: { "x-oneway": "yes" } }],
      with: {
        capability: "produce",
        topic: onewayTopic,
        acks: "in_sync_replicas",
        overrides: { "x-route": "oneway", "x-tier": "gold" },
      },
    });
  });
  fx.broker.createTopic(onewayTopic, 1);
});

afterAll(async () => {
  await fx?.close();
});

/** Request records the responder read for a correlation id, in order. */
function recordsOf(correlationId: string) {
  return fx.responder.seen.filter((r) => header(r.headers, CORRELATION_ID) === correlationId);
}

/** The correlation id of the first request record whose message text is `text`. */
async function correlationIdOf(text: string): Promise<string> {
  const record = await fx.responder.waitFor(
    (r) => r.value !== null && fromBinary(EchoRequestSchema, r.value).message === text,
  );
  return header(record.headers, CORRELATION_ID) as string;
}

/** Waits until the responder read the request tombstone of `correlationId`. */
function tombstoneOf(correlationId: string) {
  return fx.responder.waitFor(
    (r) => r.value === null && header(r.headers, CORRELATION_ID) === correlationId,
  );
}

/** A raw h2c request (no client-side deadline logic), returning status headers/trailers. */
async function rawGrpc(
  path: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ status: string | undefined; message: string | undefined; httpStatus: number }> {
  const session = http2.connect(fx.url);
  try {
    const frame = new Uint8Array(5 + body.byteLength);
    new DataView(frame.buffer).setUint32(1, body.byteLength);
    frame.set(body, 5);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.end(frame);
    return await new Promise((resolve, reject) => {
      let httpStatus = 0;
      let status: string | undefined;
      let message: string | undefined;
      stream.on("response", (h) => {
        httpStatus = Number(h[":status"]);
        status = h["grpc-status"] as string | undefined;
        message = h["grpc-message"] as string | undefined;
      });
      stream.on("trailers", (t) => {
        status = t["grpc-status"] as string | undefined;
        message = t["grpc-message"] as string | undefined;
      });
      stream.on("data", () => {});
      stream.on("end", () => resolve({ status, message, httpStatus }));
      stream.on("error", reject);
    });
  } finally {
    session.close();
  }
}

/**
 * A raw h2c unary call whose request body is written as `chunks`, one DATA frame each (a
 * write waits for the one before it), then half-closed; returns the status and reply bytes.
 */
async function rawGrpcChunks(
  path: string,
  chunks: readonly Uint8Array[],
): Promise<{ status: string | undefined; message: string | undefined; body: Buffer }> {
  const session = http2.connect(fx.url);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const done = new Promise<{
      status: string | undefined;
      message: string | undefined;
      body: Buffer;
    }>((resolve, reject) => {
      let status: string | undefined;
      let message: string | undefined;
      const body: Buffer[] = [];
      const read = (h: http2.IncomingHttpHeaders) => {
        status = (h["grpc-status"] as string | undefined) ?? status;
        message = (h["grpc-message"] as string | undefined) ?? message;
      };
      stream.on("response", read);
      stream.on("trailers", read);
      stream.on("data", (chunk: Buffer) => body.push(chunk));
      stream.on("end", () => resolve({ status, message, body: Buffer.concat(body) }));
      stream.on("error", reject);
    });
    for (const chunk of chunks) {
      await new Promise<void>((resolve) => stream.write(chunk, () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    stream.end();
    return await done;
  } finally {
    session.close();
  }
}

function copyInto(target: Headers, source: Headers) {
  source.forEach((value, name) => {
    target.set(name, value);
  });
}

const echoRequest = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));

describe("north calls", () => {
  test("unary.rpc", async () => {
    const reply = await fx.client.unaryEcho({ message: "hello unary" });
    expect(reply.message).toBe("hello unary");

    const id = await correlationIdOf("hello unary");
    await tombstoneOf(id);
    const records = recordsOf(id);
    expect(records.map((r) => r.value === null)).toEqual([false, true]);
    // Same key (the correlation id), same partition, same headers on message and tombstone.
    expect(new Set(records.map((r) => r.key))).toEqual(new Set([id]));
    expect(records[0]?.partition).toBe(records[1]?.partition);
    expect(records[1]?.headers).toEqual(records[0]?.headers);
    const headers = records[0]?.headers ?? [];
    expect(headers.slice(0, 4)).toEqual([
      [SERVICE, "grpc.examples.echo.Echo"],
      [METHOD, "UnaryEcho"],
      [REPLY_TO, "echo-responses"],
      [CORRELATION_ID, id],
    ]);
    // docs/contract.md: The correlation id: random UUID prefix (no idempotency key), MD5 of the route's header names/values.
    const digest = createHash("md5")
      .update(
        "zilla:servicegrpc.examples.echo.Echozilla:methodUnaryEchozilla:reply-toecho-responses",
      )
      .digest("hex");
    expect(id).toMatch(
      new RegExp(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}-${digest}$`),
    );
  });

  test("unary.rpc: the answer (headers, message, trailers) leaves north in one socket write", async () => {
    expect((await fx.client.unaryEcho({ message: "warm" })).message).toBe("warm");
    const port = fx.north.ports[0];
    const write = vi.spyOn(net.Socket.prototype, "write");
    let writes: number[];
    try {
      expect((await fx.client.unaryEcho({ message: "one write" })).message).toBe("one write");
      writes = write.mock.calls
        .filter((_, i) => (write.mock.contexts[i] as net.Socket).localPort === port)
        .map(([chunk]) => (chunk as Uint8Array).length);
    } finally {
      write.mockRestore();
    }
    // Before: the HEADERS frame in one write, DATA and the trailers in another.
    expect(writes).toHaveLength(1);
  });

  test("unary.rpc.error", async () => {
    const error = await fx.client
      .unaryEcho({ message: "error:9:not ready yet" })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.FailedPrecondition);
    expect(error?.rawMessage).toBe("not ready yet");
  });

  test("unary.rpc.oneway", async () => {
    const reply = await fx.client.unaryEcho(
      { message: "fire and forget" },
      { headers: { "x-oneway": "yes", "x-note": "n1" } },
    );
    // One empty message and OK, at once.
    expect(reply.message).toBe("");

    const records = await readTopic(fx.kafka, onewayTopic);
    // No end tombstone: the only record is the message.
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(fromBinary(EchoRequestSchema, record?.value ?? new Uint8Array()).message).toBe(
      "fire and forget",
    );
    // Overrides in config order, then metadata (in the order the client sent it; connect-es
    // sorts names); no correlation headers.
    expect(record?.headers).toEqual([
      ["x-route", "oneway"],
      ["x-tier", "gold"],
      ["meta:x-note", "n1"],
      ["meta:x-oneway", "yes"],
    ]);
    // Key: the correlation id, whose hash covers only the override values.
    expect(record?.key).toMatch(/-[0-9a-f]{32}$/);
    expect(fx.responder.seen.some((r) => r.key === record?.key)).toBe(false);
  });

  test("unary.rpc.message.100k", async () => {
    const text = "0123456789".repeat(10_000);
    const reply = await fx.client.unaryEcho({ message: text });
    expect(reply.message).toBe(text);
    const id = await correlationIdOf(text);
    expect(recordsOf(id)[0]?.value?.byteLength).toBe(echoRequest(text).byteLength);
  });

  test("unary.rpc.message.in.many.data.frames", async () => {
    // The length prefix itself split, then the message a few bytes per DATA frame.
    const text = "split across frames";
    const message = echoRequest(text);
    const frame = grpcFrame(message);
    const chunks = [frame.subarray(0, 2), frame.subarray(2, 7)];
    for (let at = 7; at < frame.byteLength; at += 4) chunks.push(frame.subarray(at, at + 4));
    const result = await rawGrpcChunks("/grpc.examples.echo.Echo/UnaryEcho", chunks);
    expect(result.status).toBe("0");
    expect(result.body.readUInt32BE(1)).toBe(result.body.byteLength - 5);
    expect(fromBinary(EchoRequestSchema, result.body.subarray(5)).message).toBe(text);
    const id = await correlationIdOf(text);
    expect(new Uint8Array(recordsOf(id)[0]?.value ?? [])).toEqual(message);
  });

  test("unary.rpc.request.ends.inside.a.message", async () => {
    const text = "never finished";
    const message = echoRequest(text);
    const frame = grpcFrame(message);
    const result = await rawGrpcChunks("/grpc.examples.echo.Echo/UnaryEcho", [
      frame.subarray(0, 8),
      frame.subarray(8, frame.byteLength - 1),
    ]);
    expect(result.status).toBe(String(Code.Internal));
    expect(result.message).toBe("request ended inside a message");
    expect(result.body.byteLength).toBe(0);
    // Nothing reached Kafka: the responder never saw the message.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(
      fx.responder.seen.some(
        (r) =>
          r.value !== null &&
          r.value.byteLength === message.byteLength &&
          Buffer.from(r.value).includes(Buffer.from(text)),
      ),
    ).toBe(false);
  });

  test("client.stream.rpc", async () => {
    async function* requests() {
      yield { message: "cs-a" };
      yield { message: "cs-b" };
      yield { message: "cs-c" };
    }
    const reply = await fx.client.clientStreamingEcho(requests());
    expect(reply.message).toBe("cs-a,cs-b,cs-c");
    const id = await correlationIdOf("cs-a");
    await tombstoneOf(id);
    const texts = recordsOf(id).map((r) =>
      r.value === null ? null : fromBinary(EchoRequestSchema, r.value).message,
    );
    expect(texts).toEqual(["cs-a", "cs-b", "cs-c", null]);
  });

  test("client.stream.rpc.empty", async () => {
    const before = fx.responder.seen.length;
    const reply = await fx.client.clientStreamingEcho((async function* () {})(), {
      headers: { "x-case": "empty-stream" },
    });
    expect(reply.message).toBe("");
    const tombstone = await fx.responder.waitFor(
      (r) => header(r.headers, "meta:x-case") === "empty-stream",
    );
    // The stream with no messages is just the end tombstone.
    expect(tombstone.value).toBeNull();
    const id = header(tombstone.headers, CORRELATION_ID) as string;
    expect(
      fx.responder.seen.slice(before).filter((r) => header(r.headers, CORRELATION_ID) === id),
    ).toHaveLength(1);
  });

  test("server.stream.rpc", async () => {
    const texts: string[] = [];
    for await (const reply of fx.client.serverStreamingEcho({ message: "stream:5:ss" })) {
      texts.push(reply.message);
    }
    expect(texts).toEqual(Array(5).fill("stream:5:ss"));
  });

  test("bidi.stream.rpc", async () => {
    let firstReply: () => void = () => {};
    const firstReplySeen = new Promise<void>((resolve) => (firstReply = resolve));
    let sentSecondAfterReply = false;
    async function* requests() {
      yield { message: "bidi-1" };
      // The next message leaves only once the first reply came back: replies stream while
      // the request is still open.
      await firstReplySeen;
      sentSecondAfterReply = true;
      yield { message: "bidi-2" };
    }
    const texts: string[] = [];
    for await (const reply of fx.client.bidirectionalStreamingEcho(requests())) {
      texts.push(reply.message);
      if (texts.length === 1) firstReply();
    }
    expect(texts).toEqual(["bidi-1", "bidi-2"]);
    expect(sentSecondAfterReply).toBe(true);
  });

  test("metadata.both.ways", async () => {
    const responseHeaders = new Headers();
    const responseTrailers = new Headers();
    // Unpadded base64, as gRPC clients send it: must travel byte for byte.
    const binary = Buffer.from([0, 1, 2, 250, 255]).toString("base64").replace(/=+$/, "");
    const started = Date.now();
    const reply = await fx.client.unaryEcho(
      { message: "meta:both ways" },
      {
        timeoutMs: 20_000,
        headers: { "x-text": "hello there", "x-data-bin": binary },
        onHeader: (h) => copyInto(responseHeaders, h),
        onTrailer: (t) => copyInto(responseTrailers, t),
      },
    );
    expect(reply.message).toBe("meta:both ways");

    // Request metadata reached the far side as meta:* headers, -bin text unchanged.
    const id = await correlationIdOf("meta:both ways");
    const headers = recordsOf(id)[0]?.headers ?? [];
    expect(header(headers, "meta:x-text")).toBe("hello there");
    expect(header(headers, "meta:x-data-bin")).toBe(binary);
    // gRPC transport headers are not metadata (docs/contract.md: difference 1); the deadline travels instead.
    expect(headers.some(([n]) => n.startsWith("meta:grpc-") || n === "meta:te")).toBe(false);
    expect(headers.some(([n]) => n === "meta:content-type" || n === "meta:user-agent")).toBe(false);
    const deadline = Number(header(headers, DEADLINE));
    expect(deadline).toBeGreaterThan(started + 10_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 20_000);

    // Response metadata came back as headers, the end's metadata as trailers.
    expect(responseHeaders.get("x-echo")).toBe("1");
    expect(responseHeaders.get("x-text")).toBe("hello there");
    expect(responseHeaders.get("x-data-bin")).toBe(binary);
    expect(responseTrailers.get("x-trailer")).toBe("t");
  });

  test("deadline.exceeded.waiting", async () => {
    // Raw HTTP/2, so the status is the server's, not a client-side timer's.
    const result = await rawGrpc(
      "/grpc.examples.echo.Echo/UnaryEcho",
      echoRequest("delay:10000:too slow"),
      { "grpc-timeout": "300m" },
    );
    expect(result.status).toBe(String(Code.DeadlineExceeded));

    // A client stream still open at the deadline gets its end tombstone from north.
    const opened = new Promise<void>((resolve) => {
      void fx.responder
        .waitFor(
          (r) =>
            r.value !== null &&
            fromBinary(EchoRequestSchema, r.value).message === "open at deadline",
        )
        .then(() => resolve());
    });
    const error = await fx.client
      .clientStreamingEcho(
        (async function* () {
          yield { message: "open at deadline" };
          // The client keeps its stream open past the deadline (not a wait of the test).
          await new Promise((r) => setTimeout(r, 5_000));
        })(),
        { timeoutMs: 500 },
      )
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.DeadlineExceeded);
    await opened;
    const id = await correlationIdOf("open at deadline");
    const tombstone = await tombstoneOf(id);
    expect(tombstone.key).toBe(id);
  });

  test("client.cancel", async () => {
    const abort = new AbortController();
    const call = fx.client
      .clientStreamingEcho(
        (async function* () {
          yield { message: "cancel me" };
          // The client keeps its stream open until it cancels (not a wait of the test).
          await new Promise((r) => setTimeout(r, 10_000));
        })(),
        { signal: abort.signal },
      )
      .then(() => undefined, ConnectError.from);
    const id = await correlationIdOf("cancel me");
    expect(recordsOf(id).some((r) => r.value === null)).toBe(false);
    abort.abort();
    expect((await call)?.code).toBe(Code.Canceled);
    // The cancel wrote the end tombstone (read back by the responder's kafkajs consumer), then
    // a second one that tells west to cancel the upstream call.
    const tombstone = await tombstoneOf(id);
    expect(tombstone.key).toBe(id);
    await expect
      .poll(() => recordsOf(id).map((r) => r.value === null), { timeout: 10_000 })
      .toEqual([false, true, true]);
  });

  test("unknown.method", async () => {
    const result = await rawGrpc("/grpc.examples.echo.Echo/NoSuchMethod", echoRequest("x"));
    expect(result.status).toBe(String(Code.Unimplemented));
    const unknownService = await rawGrpc("/no.such.Service/Call", echoRequest("x"));
    expect(unknownService.status).toBe(String(Code.Unimplemented));
    expect(unknownService.httpStatus).toBe(200);
  });

  test("hpack.peer.table.sizes", async () => {
    // The gateway's HPACK encoder keeps a dynamic table of up to 4096 bytes; a client that
    // allows less (SETTINGS_HEADER_TABLE_SIZE) must be told, and never sent a larger table:
    // Node's client (nghttp2) ends the connection with COMPRESSION_ERROR otherwise.
    for (const headerTableSize of [0, 100, 4096]) {
      const session = http2.connect(fx.url, { settings: { headerTableSize } });
      try {
        for (let i = 0; i < 4; i++) {
          const text = `hpack ${headerTableSize} ${i}`;
          const stream = session.request({
            ":method": "POST",
            ":path": "/grpc.examples.echo.Echo/UnaryEcho",
            "content-type": "application/grpc",
            te: "trailers",
          });
          stream.end(
            grpcFrame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: text }))),
          );
          const answer = await new Promise<{
            headers: http2.IncomingHttpHeaders;
            status: unknown;
            body: Buffer;
          }>((resolve, reject) => {
            let headers: http2.IncomingHttpHeaders = {};
            let status: unknown;
            const body: Buffer[] = [];
            stream.on("response", (h) => {
              headers = h;
            });
            stream.on("trailers", (t) => {
              status = t["grpc-status"];
            });
            stream.on("data", (chunk: Buffer) => body.push(chunk));
            stream.on("end", () => resolve({ headers, status, body: Buffer.concat(body) }));
            stream.on("error", reject);
            // A broken header block ends the session: the stream closes without its end.
            stream.on("close", () => reject(new Error(`stream closed, code ${stream.rstCode}`)));
          });
          expect(answer.headers[":status"]).toBe(200);
          expect(answer.headers["content-type"]).toBe("application/grpc");
          expect(answer.status).toBe("0");
          // The echo's reply is its request: the message comes back whole.
          expect(fromBinary(EchoRequestSchema, answer.body.subarray(5)).message).toBe(text);
        }
      } finally {
        session.close();
      }
    }
  });

  test("concurrent.calls.no.mixup", async () => {
    const count = 1_000;
    const replies = await Promise.all(
      Array.from({ length: count }, (_, i) => fx.client.unaryEcho({ message: `call-${i}` })),
    );
    const mismatched = replies.filter((r, i) => r.message !== `call-${i}`);
    expect(mismatched).toEqual([]);
  });
});
