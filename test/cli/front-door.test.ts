/**
 * The front door of the example (config unchanged, run by the CLI on free ports): one h2c
 * port speaks native gRPC, gRPC-Web (binary, and text = base64 over HTTP/1.1 and HTTP/2) and
 * Connect (JSON and binary). Browser-style calls (plain fetch with an Origin header) get the
 * CORS headers the example's `access-control: cross-origin` asks for, and a Connect-JSON call
 * writes the same Kafka record value as a native gRPC call. (A disallowed origin with listed
 * origins is refused with 403 in test/north/north-protocols.test.ts.)
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import {
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
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { type Responder, startResponder } from "../north/kafka-responder.ts";
import { exitCode, type GatewayProcess, spawnExample } from "../support/gateway-process.ts";

const origin = "https://app.example";
let broker: Broker;
let echo: EchoServer;
let proc: GatewayProcess;
let recorder: Responder;
let url: string;

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
  proc = spawnExample("bun", broker.bootstrap, echo.port);
  const ready = await proc.ready();
  url = `http://127.0.0.1:${ready.north[0]?.[0]}`;
  // Reads what north writes, in its own consumer group next to west's.
  recorder = await startResponder({
    bootstrap: broker.bootstrap,
    topic: "echo-requests",
    reply: false,
  });
}, 60_000);

afterAll(async () => {
  if (proc) {
    proc.signal("SIGINT");
    await exitCode(proc, 20_000).catch(() => proc.kill());
  }
  await recorder?.close();
  await echo?.close();
  await broker?.close();
});

const echoBytes = (message: string) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));

/** One gRPC-Web frame (flag 0 = message, 0x80 = trailers). */
function frame(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + payload.byteLength);
  out[0] = flags;
  out.writeUInt32BE(payload.byteLength, 1);
  out.set(payload, 5);
  return out;
}

/** Splits a gRPC-Web body into its frames. */
function frames(body: Buffer): Array<{ flags: number; payload: Buffer }> {
  const out: Array<{ flags: number; payload: Buffer }> = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    out.push({ flags: body[at] ?? 0, payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** Decodes base64 that may be padded at the end of every chunk the server wrote. */
function decodeChunkedBase64(text: string): Buffer {
  const groups = text.match(/[A-Za-z0-9+/]{0,4}={0,2}/g) ?? [];
  return Buffer.concat(groups.filter((g) => g !== "").map((g) => Buffer.from(g, "base64")));
}

/** What a gRPC-Web text reply carried: messages, trailers and the base64 as received. */
function readTextReply(text: string) {
  const parts = frames(decodeChunkedBase64(text));
  const messages = parts
    .filter((p) => p.flags === 0)
    .map((p) => fromBinary(EchoResponseSchema, p.payload).message);
  const trailers = parts
    .filter((p) => p.flags & 0x80)
    .map((p) => p.payload.toString())
    .join("");
  return { messages, trailers };
}

/** A gRPC-Web text call over HTTP/2 (h2c prior knowledge). */
function grpcWebTextOverHttp2(path: string, body: string) {
  return new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc-web-text",
      accept: "application/grpc-web-text",
      "x-grpc-web": "1",
    });
    let status = 0;
    let type = "";
    let text = "";
    req.on("response", (h) => {
      status = Number(h[":status"]);
      type = String(h["content-type"]);
    });
    req.setEncoding("latin1");
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () => {
      session.close();
      resolve({ status, type, text });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A browser's CORS preflight for a POST to `path` from `origin` with `requestHeaders`. */
function preflightPost(path: string, requestHeaders: string): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": requestHeaders,
    },
  });
}

describe("front door", () => {
  test("protocols.same.port", async () => {
    const clients = {
      grpc: createClient(Echo, createGrpcTransport({ baseUrl: url })),
      "grpc-web h1": createClient(
        Echo,
        createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }),
      ),
      "grpc-web h2": createClient(Echo, createGrpcWebTransport({ baseUrl: url, httpVersion: "2" })),
      "connect json": createClient(
        Echo,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false }),
      ),
      "connect binary": createClient(
        Echo,
        createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }),
      ),
    };
    for (const [name, client] of Object.entries(clients)) {
      expect((await client.unaryEcho({ message: `hello ${name}` })).message).toBe(`hello ${name}`);
      const streamed: string[] = [];
      for await (const r of client.serverStreamingEcho({ message: `stream:2:${name}` })) {
        streamed.push(r.message);
      }
      expect(streamed, name).toEqual([`stream:2:${name}`, `stream:2:${name}`]);
    }
  });

  test("grpc.web.text", async () => {
    // HTTP/1.1, as a browser's grpc-web client sends it: the request body is base64 too.
    const unary = await fetch(`${url}/grpc.examples.echo.Echo/UnaryEcho`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web-text",
        accept: "application/grpc-web-text",
        "x-grpc-web": "1",
      },
      body: frame(0, echoBytes("text mode")).toString("base64"),
    });
    expect(unary.status).toBe(200);
    expect(unary.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const unaryText = await unary.text();
    expect(unaryText).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(readTextReply(unaryText)).toEqual({
      messages: ["text mode"],
      trailers: expect.stringMatching(/grpc-status: ?0/),
    });

    // Server streaming over HTTP/2: each message arrives as its own base64 chunk.
    const streamed = await grpcWebTextOverHttp2(
      "/grpc.examples.echo.Echo/ServerStreamingEcho",
      frame(0, echoBytes("stream:3:text")).toString("base64"),
    );
    expect(streamed.status).toBe(200);
    expect(streamed.type).toBe("application/grpc-web-text+proto");
    expect(readTextReply(streamed.text)).toEqual({
      messages: ["stream:3:text", "stream:3:text", "stream:3:text"],
      trailers: expect.stringMatching(/grpc-status: ?0/),
    });

    // An upstream error travels as a status in the (base64) trailers.
    const failed = await grpcWebTextOverHttp2(
      "/grpc.examples.echo.Echo/UnaryEcho",
      frame(0, echoBytes("error:5:no such echo")).toString("base64"),
    );
    expect(readTextReply(failed.text).trailers).toMatch(/grpc-status: ?5/);
    expect(readTextReply(failed.text).trailers).toContain("grpc-message: no%20such%20echo");

    // Text that is not base64 is a bad request, not a crash.
    const garbage = await fetch(`${url}/grpc.examples.echo.Echo/UnaryEcho`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1" },
      body: "not*base64!",
    });
    const garbageReply = readTextReply(await garbage.text());
    expect(garbageReply.messages).toEqual([]);
    expect(garbageReply.trailers).toMatch(/grpc-status: ?3/);
  });

  test("browser.connect.json.cors", async () => {
    const path = "/grpc.examples.echo.Echo/UnaryEcho";
    const preflight = await preflightPost(path, "content-type,connect-protocol-version");
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(origin);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    expect(preflight.headers.get("access-control-allow-headers")).toBe(
      "content-type,connect-protocol-version",
    );

    const call = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { origin, "content-type": "application/json", "x-via": "connect-json" },
      body: JSON.stringify({ message: "same record" }),
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(origin);
    expect(call.headers.get("vary")).toMatch(/origin/i);
    expect(await call.json()).toEqual({ message: "same record" });

    // The same message from a native gRPC client: the record values are the same bytes.
    const grpc = createClient(Echo, createGrpcTransport({ baseUrl: url }));
    await grpc.unaryEcho({ message: "same record" }, { headers: { "x-via": "grpc" } });
    const via = (value: string) =>
      recorder.waitFor(
        (r) => r.value !== null && r.headers.some(([n, v]) => n === "meta:x-via" && v === value),
      );
    const [fromJson, fromGrpc] = await Promise.all([via("connect-json"), via("grpc")]);
    expect(fromJson.value).not.toBeNull();
    expect(Buffer.compare(fromJson.value as Buffer, fromGrpc.value as Buffer)).toBe(0);
    expect(new Uint8Array(fromJson.value as Buffer)).toEqual(echoBytes("same record"));
  });

  test("browser.grpc.web.cors", async () => {
    const path = "/grpc.examples.echo.Echo/UnaryEcho";
    const preflight = await preflightPost(path, "content-type,x-grpc-web,x-user-agent");
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(origin);

    const call = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { origin, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: new Uint8Array(frame(0, echoBytes("grpc-web from a page"))),
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(origin);
    const exposed = (call.headers.get("access-control-expose-headers") ?? "").split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(["grpc-status", "grpc-message"]));
    const parts = frames(Buffer.from(await call.arrayBuffer()));
    expect(fromBinary(EchoResponseSchema, parts[0]?.payload ?? Buffer.alloc(0)).message).toBe(
      "grpc-web from a page",
    );
    expect(parts.at(-1)?.payload.toString()).toMatch(/grpc-status: ?0/);
  });
});
