/**
 * The front door speaks gRPC, gRPC-Web and Connect (binary and JSON, HTTP/2 and HTTP/1.1 on
 * the same h2c port), and every protocol writes the same request record. Also: metadata
 * order and unknown fields survive, and the idempotency key prefixes the correlation id.
 */
import { createHash } from "node:crypto";
import { request } from "node:http";
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  Echo,
  EchoRequestSchema,
  EchoResponseSchema,
} from "../../gen/grpc/examples/echo/echo_pb.ts";
import { CORRELATION_ID } from "../../src/kafka/header-names.ts";
import { header, type NorthFixture, startNorthFixture } from "./north-fixture.ts";

let fx: NorthFixture;

const appOrigin = "https://app.example";

beforeAll(async () => {
  fx = await startNorthFixture((config) => {
    config.accessControl = { policy: "cross-origin", allow: { origins: [appOrigin] } };
  });
});

/** A plain HTTP/1.1 request to north; status, headers and body. */
function http1(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const url = new URL(fx.url);
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (c) => {
        text += c;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

afterAll(async () => {
  await fx?.close();
});

const echoBytes = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));

/** The first request record whose value decodes to `text`. */
function requestRecord(text: string) {
  return fx.responder.waitFor(
    (r) => r.value !== null && fromBinary(EchoRequestSchema, r.value).message === text,
  );
}

/** A unary gRPC call over raw HTTP/2 with headers sent exactly as given; the reply bytes. */
async function rawUnary(
  body: Uint8Array,
  headers: Record<string, string | string[]>,
  frames: Uint8Array[] = [body],
): Promise<{ reply: Uint8Array; status: string | undefined }> {
  const session = http2.connect(fx.url);
  try {
    const frame = Buffer.concat(
      frames.map((f) => {
        const one = new Uint8Array(5 + f.byteLength);
        new DataView(one.buffer).setUint32(1, f.byteLength);
        one.set(f, 5);
        return one;
      }),
    );
    // Node writes header fields in key order, array values as repeated fields.
    const stream = session.request({
      ":method": "POST",
      ":path": "/grpc.examples.echo.Echo/UnaryEcho",
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.end(frame);
    const chunks: Buffer[] = [];
    let status: string | undefined;
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("response", (h) => {
      status ??= h["grpc-status"] as string | undefined;
    });
    stream.on("trailers", (t) => {
      status = t["grpc-status"] as string | undefined;
    });
    await new Promise<void>((resolve, reject) => {
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    return { reply: Buffer.concat(chunks).subarray(5), status };
  } finally {
    session.close();
  }
}

describe("north protocols", () => {
  test("connect.json.http1.same.record", async () => {
    const client = createClient(
      Echo,
      createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", useBinaryFormat: false }),
    );
    const reply = await client.unaryEcho({ message: "connect json over http/1.1" });
    expect(reply.message).toBe("connect json over http/1.1");
    // JSON in, the same protobuf bytes out as a gRPC client would have produced.
    const record = await requestRecord("connect json over http/1.1");
    expect(new Uint8Array(record.value ?? [])).toEqual(echoBytes("connect json over http/1.1"));
    expect(record.headers.some(([n]) => n.startsWith("meta:connect-"))).toBe(false);
  });

  test("grpc.web.http1", async () => {
    const client = createClient(
      Echo,
      createGrpcWebTransport({ baseUrl: fx.url, httpVersion: "1.1" }),
    );
    expect((await client.unaryEcho({ message: "grpc-web unary" })).message).toBe("grpc-web unary");
    const texts: string[] = [];
    for await (const r of client.serverStreamingEcho({ message: "stream:3:grpc-web" })) {
      texts.push(r.message);
    }
    expect(texts).toEqual(["stream:3:grpc-web", "stream:3:grpc-web", "stream:3:grpc-web"]);
    const record = await requestRecord("grpc-web unary");
    expect(record.headers.some(([n]) => n === "meta:x-grpc-web" || n === "meta:x-user-agent")).toBe(
      false,
    );
  });

  test("connect.http2.streams", async () => {
    const client = createClient(
      Echo,
      createConnectTransport({ baseUrl: fx.url, httpVersion: "2" }),
    );
    async function* requests() {
      yield { message: "c1" };
      yield { message: "c2" };
    }
    expect((await client.clientStreamingEcho(requests())).message).toBe("c1,c2");
  });

  test("metadata.received.order", async () => {
    const { reply } = await rawUnary(echoBytes("ordered metadata"), {
      "x-zulu": ["1", "3"],
      "x-alpha": "2",
      "grpc-accept-encoding": "identity",
    });
    expect(fromBinary(EchoResponseSchema, reply).message).toBe("ordered metadata");
    const record = await requestRecord("ordered metadata");
    // In received order (not sorted), repeated entries kept apart, grpc-* left out.
    expect(record.headers.filter(([n]) => n.startsWith("meta:"))).toEqual([
      ["meta:x-zulu", "1"],
      ["meta:x-zulu", "3"],
      ["meta:x-alpha", "2"],
    ]);
  });

  test("unknown.fields.kept", async () => {
    // EchoRequest{message} plus field 99 (varint 7), which the generated schema does not know.
    const known = echoBytes("with unknown field");
    const body = new Uint8Array([...known, 0x98, 0x06, 0x07]);
    await rawUnary(body, {});
    const record = await requestRecord("with unknown field");
    expect(new Uint8Array(record.value ?? [])).toEqual(body);
  });

  test("idempotency.key.correlation.id", async () => {
    const client = fx.client;
    await client.unaryEcho(
      { message: "idempotent call" },
      { headers: { "idempotency-key": "order-42" } },
    );
    const record = await requestRecord("idempotent call");
    const digest = createHash("md5")
      .update(
        "zilla:servicegrpc.examples.echo.Echozilla:methodUnaryEchozilla:reply-toecho-responses",
      )
      .digest("hex");
    expect(header(record.headers, CORRELATION_ID)).toBe(`order-42-${digest}`);
    expect(record.key).toBe(`order-42-${digest}`);
  });

  test("grpc.json.same.record", async () => {
    // gRPC framing with JSON messages goes through connect-es, and still writes protobuf.
    const client = createClient(
      Echo,
      createGrpcTransport({ baseUrl: fx.url, useBinaryFormat: false }),
    );
    expect((await client.unaryEcho({ message: "grpc+json" })).message).toBe("grpc+json");
    const record = await requestRecord("grpc+json");
    expect(new Uint8Array(record.value ?? [])).toEqual(echoBytes("grpc+json"));
  });

  test("grpc.compressed.request", async () => {
    const client = createClient(
      Echo,
      createGrpcTransport({
        baseUrl: fx.url,
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
    );
    const text = `compressed ${"z".repeat(2_000)}`;
    expect((await client.unaryEcho({ message: text })).message).toBe(text);
    async function* requests() {
      yield { message: "gz-1" };
      yield { message: "gz-2" };
    }
    expect((await client.clientStreamingEcho(requests())).message).toBe("gz-1,gz-2");
    // The record holds the message as the client meant it, not its compressed form.
    const record = await requestRecord(text);
    expect(new Uint8Array(record.value ?? [])).toEqual(echoBytes(text));
  });

  test("unary.rpc.extra.request.message", async () => {
    const before = fx.responder.seen.length;
    const { status } = await rawUnary(echoBytes("first"), {}, [
      echoBytes("first of two"),
      echoBytes("second of two"),
    ]);
    expect(status).toBe(String(Code.Unimplemented));
    // Nothing reached Kafka for the malformed call.
    await fx.client.unaryEcho({ message: "after the malformed call" });
    await requestRecord("after the malformed call");
    const texts = fx.responder.seen
      .slice(before)
      .flatMap((r) => (r.value === null ? [] : [fromBinary(EchoRequestSchema, r.value).message]));
    expect(texts).not.toContain("first of two");
  });

  test("cors.cross.origin", async () => {
    const path = "/grpc.examples.echo.Echo/UnaryEcho";
    const preflight = await http1("OPTIONS", path, {
      origin: appOrigin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-user",
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe(appOrigin);
    expect(preflight.headers["access-control-allow-headers"]).toBe("content-type,x-user");

    const call = await http1(
      "POST",
      path,
      { origin: appOrigin, "content-type": "application/json", "x-user": "u1" },
      JSON.stringify({ message: "from the browser" }),
    );
    expect(call.status).toBe(200);
    expect(JSON.parse(call.body)).toEqual({ message: "from the browser" });
    expect(call.headers["access-control-allow-origin"]).toBe(appOrigin);
    // No expose list configured: every response header is readable by the page.
    expect(String(call.headers["access-control-expose-headers"])).toContain("x-echo");

    const refused = await http1(
      "POST",
      path,
      { origin: "https://elsewhere.example", "content-type": "application/json" },
      JSON.stringify({ message: "not allowed" }),
    );
    expect(refused.status).toBe(403);
  });
});
