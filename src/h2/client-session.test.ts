import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ClientSession, type ClientStream, h2Errors } from "./client-session.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";

/** What one stream received, and a promise of its end. */
interface Received {
  blocks: { fields: HeaderField[]; endStream: boolean }[];
  bytes: number;
  chunks: Uint8Array[];
  closed: Promise<{ rstCode: number; error: Error | undefined }>;
  stream: ClientStream;
}

const sessions: ClientSession[] = [];
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const close of closers.splice(0)) await close();
});

function open(port: number): ClientSession {
  const session = new ClientSession({ host: "127.0.0.1", port });
  sessions.push(session);
  return session;
}

function call(session: ClientSession, path: string, body?: Uint8Array): Received {
  let done!: (v: { rstCode: number; error: Error | undefined }) => void;
  const received: Received = {
    blocks: [],
    bytes: 0,
    chunks: [],
    closed: new Promise((resolve) => {
      done = resolve;
    }),
    stream: undefined as unknown as ClientStream,
  };
  received.stream = session.request(
    [
      [":method", "POST"],
      [":scheme", "http"],
      [":authority", "localhost"],
      [":path", path],
      ["content-type", "application/grpc"],
    ],
    {
      headers: (fields, endStream) => received.blocks.push({ fields, endStream }),
      data: (bytes) => {
        received.bytes += bytes.length;
        received.chunks.push(Uint8Array.from(bytes));
      },
      closed: (rstCode, error) => done({ rstCode, error }),
    },
  );
  if (body) received.stream.write(body, true);
  return received;
}

async function nodeServer(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  settings?: http2.Settings,
): Promise<{ port: number; server: http2.Http2Server }> {
  const server = http2.createServer(settings ? { settings } : {});
  server.on("stream", (stream, headers) => {
    // A stream this side resets reports it as an error: the tests look at rstCode instead.
    stream.on("error", () => {});
    onStream(stream, headers);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => sockets.add(s));
  closers.push(() => {
    for (const s of sockets) s.destroy();
  });
  return { port: (server.address() as net.AddressInfo).port, server };
}

const field = (r: Received, block: number, name: string) =>
  r.blocks[block]?.fields.find(([n]) => n === name)?.[1];

describe("ClientSession against node:http2", () => {
  it("makes a request with a body, gets headers, data and trailers", async () => {
    const { port } = await nodeServer((stream, headers) => {
      const parts: Buffer[] = [];
      stream.on("data", (d: Buffer) => parts.push(d));
      stream.on("end", () => {
        stream.respond(
          { ":status": 200, "x-path": String(headers[":path"]) },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-len": "5" }));
        stream.end(Buffer.concat(parts));
      });
    });
    const session = open(port);
    const r = call(session, "/a/b", Buffer.from("hello"));
    expect(await r.closed).toEqual({ rstCode: 0, error: undefined });
    expect(field(r, 0, ":status")).toBe("200");
    expect(field(r, 0, "x-path")).toBe("/a/b");
    expect(Buffer.concat(r.chunks).toString()).toBe("hello");
    expect(r.blocks[1]).toEqual({
      fields: [
        ["grpc-status", "0"],
        ["x-len", "5"],
      ],
      endStream: true,
    });
    // Many streams on the one connection, their ids odd and rising.
    const more = Array.from({ length: 20 }, (_, i) => call(session, `/n/${i}`, Buffer.from("x")));
    await Promise.all(more.map((m) => m.closed));
    expect(more.map((m) => m.stream.id)).toEqual(Array.from({ length: 20 }, (_, i) => 3 + 2 * i));
    expect(more.map((m) => field(m, 0, "x-path"))).toEqual(more.map((_, i) => `/n/${i}`));
  });

  it("keeps to flow control both ways: 5 MB up and down on streams of a 64 KiB window", async () => {
    const size = 5 * 1024 * 1024;
    const { port } = await nodeServer(
      (stream) => {
        let got = 0;
        stream.on("data", (d: Buffer) => {
          got += d.length;
        });
        stream.on("end", () => {
          stream.respond({ ":status": 200, "x-got": String(got) });
          stream.end(Buffer.alloc(size, 7));
        });
      },
      { initialWindowSize: 65_535 },
    );
    const session = open(port);
    const body = Buffer.alloc(size, 1);
    const r = [call(session, "/big", body), call(session, "/big", body)];
    for (const one of r) {
      expect(await one.closed).toEqual({ rstCode: 0, error: undefined });
      expect(field(one, 0, "x-got")).toBe(String(size));
      expect(one.bytes).toBe(size);
    }
  });

  it("waits for the peer's concurrent-stream limit", async () => {
    let inside = 0;
    let most = 0;
    const { port } = await nodeServer(
      (stream) => {
        inside++;
        most = Math.max(most, inside);
        stream.on("data", () => {});
        stream.on("end", () =>
          setTimeout(() => {
            inside--;
            stream.respond({ ":status": 200 });
            stream.end("ok");
          }, 5),
        );
      },
      { maxConcurrentStreams: 2 },
    );
    const session = open(port);
    // The first call learns the limit (SETTINGS come with the connection).
    await call(session, "/first", Buffer.from("x")).closed;
    const calls = Array.from({ length: 10 }, () => call(session, "/x", Buffer.from("x")));
    const ends = await Promise.all(calls.map((c) => c.closed));
    expect(ends.every((e) => e.rstCode === 0 && e.error === undefined)).toBe(true);
    expect(most).toBe(2);
  });

  it("reports the peer's RST_STREAM code, and resets a stream it cancels", async () => {
    let cancelledCode = -1;
    const { port } = await nodeServer((stream, headers) => {
      if (headers[":path"] === "/refuse") {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.on("close", () => {
        cancelledCode = stream.rstCode;
      });
      stream.respond({ ":status": 200 });
    });
    const session = open(port);
    const refused = call(session, "/refuse", Buffer.from("x"));
    expect((await refused.closed).rstCode).toBe(h2Errors.refusedStream);
    const held = call(session, "/hold");
    held.stream.write(Buffer.from("part"), false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    held.stream.reset();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cancelledCode).toBe(http2.constants.NGHTTP2_CANCEL);
    // The connection goes on.
    const after = call(session, "/refuse", Buffer.from("x"));
    expect((await after.closed).rstCode).toBe(h2Errors.refusedStream);
  });

  it("ends streams the peer's GOAWAY leaves out as refused and takes no new ones", async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const { port } = await nodeServer((stream) => {
      held.push(stream);
      stream.on("data", () => {});
    });
    let gone = false;
    const session = new ClientSession({ host: "127.0.0.1", port }, () => {
      gone = true;
    });
    sessions.push(session);
    const first = call(session, "/one");
    first.stream.write(Buffer.from("x"), false);
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // GOAWAY naming the first stream as the last processed, then a stream it never saw.
    held[0]?.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    while (!gone) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(session.goingAway).toBe(true);
    expect(() => call(session, "/late")).toThrow(/going away/);
    held[0]?.respond({ ":status": 200 });
    held[0]?.end("done");
    expect(await first.closed).toEqual({ rstCode: 0, error: undefined });
  });

  it("takes no new calls near the end of its stream ids; open and waiting streams finish", async () => {
    const { port } = await nodeServer(
      (stream) => {
        stream.on("data", () => {});
        stream.on("end", () =>
          setTimeout(() => {
            stream.respond({ ":status": 200 });
            stream.end("ok");
          }, 5),
        );
      },
      { maxConcurrentStreams: 2 },
    );
    let gone = false;
    // Ids up to 131,079 with 131,072 kept spare: 7 is the last id before the session retires;
    // a stream still waiting for its turn then gets one of the spare ids.
    const session = new ClientSession({ host: "127.0.0.1", port, lastStreamId: 131_079 }, () => {
      gone = true;
    });
    sessions.push(session);
    // The first call learns the limit of 2; of the next four, two wait for a turn.
    await call(session, "/first", Buffer.from("x")).closed;
    const calls = Array.from({ length: 4 }, () => call(session, "/x", Buffer.from("x")));
    expect(calls.map((c) => c.stream.id)).toEqual([3, 5, 0, 0]);
    expect(gone).toBe(false);
    const ends = await Promise.all(calls.map((c) => c.closed));
    expect(ends.every((e) => e.rstCode === 0 && e.error === undefined)).toBe(true);
    expect(calls.map((c) => c.stream.id)).toEqual([3, 5, 7, 9]);
    // Id 7 retired the session: the pool was told, and it takes no new call.
    expect(gone).toBe(true);
    expect(() => call(session, "/x")).toThrow(/going away/);
  });

  it("fails every stream with the connection's error when the connection is refused", async () => {
    const probe = net.createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const session = open(port);
    const r = call(session, "/x", Buffer.from("x"));
    const end = await r.closed;
    expect((end.error as { code?: string }).code).toBe("ECONNREFUSED");
    expect(session.goingAway).toBe(true);
  });

  it("decodes a header block longer than a frame (CONTINUATION)", async () => {
    const long = "v".repeat(40_000);
    const { port } = await nodeServer((stream) => {
      stream.respond({ ":status": 200, "x-long": long }, { endStream: true });
    });
    const session = new ClientSession({ host: "127.0.0.1", port, maxHeaderListBytes: 100_000 });
    sessions.push(session);
    const r = call(session, "/x", Buffer.from("x"));
    expect((await r.closed).rstCode).toBe(0);
    expect(field(r, 0, "x-long")).toBe(long);
    // Over the limit: that stream fails, the connection goes on.
    const small = new ClientSession({ host: "127.0.0.1", port, maxHeaderListBytes: 20_000 });
    sessions.push(small);
    const over = await call(small, "/x", Buffer.from("x")).closed;
    expect(over.error?.message).toMatch(/header list of 40\d+ bytes is over the limit of 20000/);
    expect((await call(small, "/x", Buffer.from("x")).closed).error?.message).toMatch(
      /over the limit/,
    );
    expect(small.goingAway).toBe(false);
  });
});

/** A server speaking raw frames, for what node:http2 servers never send. */
async function rawServer(
  onRequest: (
    write: (type: number, flags: number, id: number, payload: Uint8Array) => void,
    id: number,
    socket: net.Socket,
  ) => void,
): Promise<{
  port: number;
  received: { type: number; flags: number; id: number; payload: Buffer }[];
}> {
  const received: { type: number; flags: number; id: number; payload: Buffer }[] = [];
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    const write = (type: number, flags: number, id: number, payload: Uint8Array) => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(id, 5);
      socket.write(Buffer.concat([head, payload]));
    };
    write(4, 0, 0, new Uint8Array(0));
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!prefaceSeen) {
        if (buf.length < 24) return;
        prefaceSeen = true;
        buf = buf.subarray(24);
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const frame = {
          type: buf[3] as number,
          flags: buf[4] as number,
          id: buf.readUInt32BE(5),
          payload: buf.subarray(9, 9 + len),
        };
        buf = buf.subarray(9 + len);
        received.push(frame);
        if (frame.type === 1) onRequest(write, frame.id, socket);
      }
    });
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as net.AddressInfo).port, received };
}

describe("ClientSession against raw frames", () => {
  const encoder = new HpackEncoder();

  it("strips padding, answers PING, and reads a response split across many socket writes", async () => {
    const { port, received } = await rawServer((write, id, socket) => {
      write(6, 0, 0, Buffer.from("12345678"));
      const block = encoder.encode([
        [":status", "200"],
        ["content-type", "application/grpc"],
      ]);
      // HEADERS padded (3 bytes) with a priority part, DATA padded, trailers.
      const headers = Buffer.concat([Buffer.from([3]), Buffer.alloc(5), block, Buffer.alloc(3)]);
      write(1, 0x4 | 0x8 | 0x20, id, headers);
      const data = Buffer.concat([Buffer.from([2]), Buffer.from("abc"), Buffer.alloc(2)]);
      const head = Buffer.alloc(9);
      head.writeUIntBE(data.length, 0, 3);
      head[3] = 0;
      head[4] = 0x8;
      head.writeUInt32BE(id, 5);
      // Byte by byte: frames cut anywhere.
      for (const byte of Buffer.concat([head, data])) socket.write(Buffer.from([byte]));
      write(1, 0x4 | 0x1, id, encoder.encode([["grpc-status", "0"]]));
    });
    const session = open(port);
    const r = call(session, "/x", Buffer.from("x"));
    expect(await r.closed).toEqual({ rstCode: 0, error: undefined });
    expect(Buffer.concat(r.chunks).toString()).toBe("abc");
    expect(field(r, 1, "grpc-status")).toBe("0");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const pong = received.find((f) => f.type === 6);
    expect(pong?.flags).toBe(1);
    expect(pong?.payload.toString()).toBe("12345678");
    // SETTINGS: push off, the stream window announced; the server's SETTINGS acknowledged.
    const settings = received.find((f) => f.type === 4 && f.flags === 0);
    expect(settings?.payload.readUInt16BE(0)).toBe(2);
    expect(settings?.payload.readUInt32BE(2)).toBe(0);
    expect(received.some((f) => f.type === 4 && f.flags === 1)).toBe(true);
  });

  it("answers a protocol error with GOAWAY and fails the streams", async () => {
    const { port, received } = await rawServer((write, id) => {
      // PUSH_PROMISE after push was turned off.
      write(5, 0x4, id, Buffer.from([0, 0, 0, 2]));
    });
    const session = open(port);
    const r = call(session, "/x", Buffer.from("x"));
    const end = await r.closed;
    expect((end.error as { code?: string }).code).toBe("ERR_HTTP2_SESSION_ERROR");
    expect(end.error?.message).toMatch(/PUSH_PROMISE/);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const goaway = received.find((f) => f.type === 7);
    expect(goaway?.payload.readUInt32BE(4)).toBe(h2Errors.protocolError);
  });

  it("ends the connection on an undecodable header block (COMPRESSION_ERROR)", async () => {
    const { port, received } = await rawServer((write, id) => {
      // Indexed field 0 does not exist.
      write(1, 0x4 | 0x1, id, Buffer.from([0x80]));
    });
    const session = open(port);
    const end = await call(session, "/x", Buffer.from("x")).closed;
    expect((end.error as { code?: string }).code).toBe("ERR_HTTP2_SESSION_ERROR");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received.find((f) => f.type === 7)?.payload.readUInt32BE(4)).toBe(
      h2Errors.compressionError,
    );
  });

  it("says so when the upstream answers in HTTP/1.1", async () => {
    const server = net.createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    const session = open((server.address() as net.AddressInfo).port);
    const end = await call(session, "/x", Buffer.from("x")).closed;
    expect(end.error?.message).toBe(
      'upstream broke the HTTP/2 protocol: the upstream does not speak HTTP/2 here (its first bytes: "HTTP/1.1 400 Bad") (error code 1)',
    );
  });

  it("sends its request headers so that a decoder reads them back", async () => {
    const { port, received } = await rawServer((write, id) => {
      write(3, 0, id, Buffer.from([0, 0, 0, 8]));
    });
    const session = open(port);
    const end = await call(session, "/pkg.Svc/Method", Buffer.from("body")).closed;
    expect(end.rstCode).toBe(h2Errors.cancel);
    const headers = received.find((f) => f.type === 1);
    expect(headers?.flags).toBe(0x4);
    expect(new HpackDecoder().decode(headers?.payload as Buffer)).toEqual([
      [":method", "POST"],
      [":scheme", "http"],
      [":authority", "localhost"],
      [":path", "/pkg.Svc/Method"],
      ["content-type", "application/grpc"],
    ]);
    const data = received.find((f) => f.type === 0);
    expect(data?.flags).toBe(1);
    expect(data?.payload.toString()).toBe("body");
  });
});
