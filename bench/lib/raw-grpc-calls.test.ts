import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcFrame } from "./echo-payload.ts";
import { connectSessions, createFrameReader, rawCallOf } from "./raw-grpc-calls.ts";
import type { Scenario } from "./scenarios.ts";

describe("createFrameReader", () => {
  it("splits gRPC frames however the chunks cut them", () => {
    const a = new Uint8Array([1, 2, 3]);
    const b = new Uint8Array(300).fill(7);
    const body = Buffer.concat([grpcFrame(a), grpcFrame(b), grpcFrame(new Uint8Array(0))]);
    for (const cut of [1, 4, 5, 6, 200, body.length]) {
      const frames: Uint8Array[] = [];
      const read = createFrameReader((payload) => frames.push(Buffer.from(payload)));
      for (let at = 0; at < body.length; at += cut) read(body.subarray(at, at + cut));
      expect(frames.map((f) => f.length)).toEqual([3, 300, 0]);
      expect(Buffer.from(frames[1] as Uint8Array).equals(Buffer.from(b))).toBe(true);
    }
  });
});

/**
 * A tiny echo server on node:http2 whose answers can be spoiled, to prove that the raw
 * load client fails a call on a wrong echo, a missing reply or a non-zero status.
 */
describe("rawCallOf", () => {
  let server: http2.Http2Server;
  let url = "";
  let spoil: "none" | "content" | "count" | "status" = "none";

  beforeAll(async () => {
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const path = String(headers[":path"]);
      const replies = path.endsWith("ServerStreamingEcho") ? 10 : 1;
      const read = createFrameReader((payload) => {
        const reply = spoil === "content" ? Buffer.from(payload).fill(0x41, 2) : payload;
        const count = spoil === "count" ? replies - 1 : replies;
        for (let i = 0; i < count; i++) stream.write(grpcFrame(reply));
        if (!path.endsWith("BidirectionalStreamingEcho")) stream.end();
      });
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": spoil === "status" ? "13" : "0" }),
      );
      stream.on("data", read);
      stream.on("end", () => {
        if (path.endsWith("BidirectionalStreamingEcho")) stream.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const scenario = (kind: Scenario["kind"]): Scenario => ({
    id: kind,
    title: kind,
    kind,
    payloadBytes: 100,
  });

  it("completes unary, server-streaming and bidi calls that echo correctly", async () => {
    spoil = "none";
    const [session] = await connectSessions(url, 1);
    try {
      for (const kind of ["unary", "server-stream", "bidi"] as const) {
        await rawCallOf(scenario(kind))(session as http2.ClientHttp2Session);
      }
    } finally {
      session?.destroy();
    }
  });

  it("fails a call on a wrong echo, a missing reply or a non-zero grpc-status", async () => {
    const [session] = await connectSessions(url, 1);
    try {
      const call = rawCallOf(scenario("server-stream"));
      spoil = "content";
      await expect(call(session as http2.ClientHttp2Session)).rejects.toThrow(/differs/);
      spoil = "count";
      await expect(call(session as http2.ClientHttp2Session)).rejects.toThrow(/9 replies/);
      spoil = "status";
      await expect(call(session as http2.ClientHttp2Session)).rejects.toThrow(/grpc-status 13/);
    } finally {
      session?.destroy();
    }
  });
});
