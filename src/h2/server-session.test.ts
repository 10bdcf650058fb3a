import * as http2 from "node:http2";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  connectRawHttp2,
  encodeFrame,
  flags,
  frameType,
  grpcRequestHeaders,
  headerBlock,
  preface,
  type RawHttp2,
  settingId,
  settingsFrame,
} from "../../test/support/raw-http2.ts";
import { h2Errors } from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { ServerSession, type ServerSessionOptions, type ServerStream } from "./server-session.ts";

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

type Serve = (stream: ServerStream, fields: HeaderField[]) => void;

/** A server whose connections run on ServerSession; `serve` handles each stream. */
async function serve(
  onStream: Serve,
  options: Partial<ServerSessionOptions> = {},
): Promise<{ port: number; sessions: ServerSession[] }> {
  const sessions: ServerSession[] = [];
  const server = net.createServer((socket) => {
    sessions.push(
      new ServerSession(socket, {
        maxConcurrentStreams: 100,
        maxHeaderListBytes: 16 * 1024,
        ...options,
        onStream,
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, sessions };
}

/** Echoes the request body with gRPC-style headers and trailers, writing as the window lets. */
const echo: Serve = (stream) => {
  const chunks: Buffer[] = [];
  stream.handler = {
    data(bytes, end) {
      if (bytes.length > 0) chunks.push(Buffer.from(bytes));
      if (!end) return;
      stream.respond([
        [":status", "200"],
        ["content-type", "application/grpc"],
      ]);
      stream.end(Buffer.concat(chunks), [["grpc-status", "0"]]);
    },
    streamClosed() {},
  };
};

function client(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  closers.push(() => session.destroy());
  return session;
}

async function request(
  session: http2.ClientHttp2Session,
  body: Uint8Array,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: unknown; body: Buffer; trailers: http2.IncomingHttpHeaders; rst: number }> {
  const req = session.request({ ":method": "POST", ":path": "/x", ...headers });
  const chunks: Buffer[] = [];
  let status: unknown;
  let trailers: http2.IncomingHttpHeaders = {};
  req.on("response", (h) => {
    status = h[":status"];
  });
  req.on("trailers", (t) => {
    trailers = t;
  });
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("error", () => {});
  req.end(body);
  await new Promise((resolve) => req.on("close", resolve));
  return { status, body: Buffer.concat(chunks), trailers, rst: req.rstCode ?? 0 };
}

describe("ServerSession with node:http2 clients", () => {
  it("answers a request with headers, its body and trailers", async () => {
    const { port } = await serve(echo);
    const r = await request(client(port), Buffer.from("hello"));
    expect(r).toMatchObject({ status: 200, rst: 0 });
    expect(r.body.toString()).toBe("hello");
    expect(r.trailers["grpc-status"]).toBe("0");
  });

  it("keeps to flow control both ways: 5 MB up and back on 64 KiB stream windows", async () => {
    const { port } = await serve(echo, {
      streamWindowBytes: 65_535,
      connectionWindowBytes: 65_535,
    });
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: 65_535 },
    });
    session.on("error", () => {});
    closers.push(() => session.destroy());
    const body = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const [a, b] = await Promise.all([request(session, body), request(session, body)]);
    for (const r of [a, b]) {
      expect(r.rst).toBe(0);
      expect(r.body.equals(body)).toBe(true);
    }
  });

  it("holds a paused stream's body in the client (its window is not given back)", async () => {
    let received = 0;
    let paused: ServerStream | undefined;
    const { port } = await serve(
      (stream) => {
        paused = stream;
        stream.pause();
        stream.handler = {
          data(bytes, end) {
            received += bytes.length;
            if (end) {
              stream.respond([[":status", "200"]]);
              stream.end(undefined, [["n", String(received)]]);
            }
          },
          streamClosed() {},
        };
      },
      { streamWindowBytes: 65_535 },
    );
    const done = request(client(port), Buffer.alloc(300_000));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Only the first window came in while paused.
    expect(received).toBeLessThanOrEqual(65_535);
    expect(received).toBeGreaterThan(0);
    paused?.resume();
    const r = await done;
    expect(r.trailers.n).toBe("300000");
  });

  it("tells the stream's user a client reset, with its code", async () => {
    let closed: [number, boolean] | undefined;
    const { port } = await serve((stream) => {
      stream.handler = {
        data() {},
        streamClosed: (code, byClient) => {
          closed = [code, byClient];
        },
      };
    });
    const session = client(port);
    const req = session.request({ ":method": "POST", ":path": "/x" });
    req.on("error", () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toEqual([h2Errors.cancel, true]);
  });

  it("closes gracefully: GOAWAY, the open stream finishes, then the connection ends", async () => {
    let open: ServerStream | undefined;
    const { port, sessions } = await serve((stream) => {
      open = stream;
      stream.handler = { data() {}, streamClosed() {} };
    });
    const session = client(port);
    const req = session.request({ ":method": "POST", ":path": "/x" });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    req.end();
    const goaway = new Promise<number>((resolve) =>
      session.once("goaway", (code) => resolve(code)),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    sessions[0]?.close();
    expect(await goaway).toBe(0);
    open?.respond([[":status", "200"]]);
    open?.end(Buffer.from("after goaway"));
    await new Promise((resolve) => req.on("close", resolve));
    expect(Buffer.concat(chunks).toString()).toBe("after goaway");
    await new Promise((resolve) => session.on("close", resolve));
  });
});

describe("ServerSession against raw frames", () => {
  it("refuses streams past the concurrent limit and over the header list limit; the connection goes on", async () => {
    const { port } = await serve(
      (stream) => {
        stream.handler = { data() {}, streamClosed() {} };
      },
      { maxConcurrentStreams: 2, maxHeaderListBytes: 4096 },
    );
    const raw = await connectRawHttp2(port);
    closers.push(() => raw.close());
    await raw.waitFor((f) => f.type === frameType.settings && f.flags === 0);
    for (const id of [1, 3, 5]) raw.headers(id, grpcRequestHeaders("/a"));
    await raw.waitFor((f) => f.type === frameType.rstStream && f.streamId === 5);
    expect(raw.resets().get(5)).toBe(h2Errors.refusedStream);
    expect(raw.resets().has(1)).toBe(false);
    raw.rst(1);
    raw.headers(7, grpcRequestHeaders("/a", [["x-big", "b".repeat(5000)]]));
    await raw.waitFor((f) => f.type === frameType.rstStream && f.streamId === 7);
    expect(raw.resets().get(7)).toBe(h2Errors.enhanceYourCalm);
    raw.headers(9, grpcRequestHeaders("/a"));
    raw.ping(Buffer.from("pingpong"));
    const pong = await raw.waitFor((f) => f.type === frameType.ping && f.flags === 1);
    expect(pong.payload.toString()).toBe("pingpong");
    expect(raw.resets().has(9)).toBe(false);
    expect(raw.isClosed).toBe(false);
  });

  it("resets a request without :path (PROTOCOL_ERROR) and ends the connection on an even stream id", async () => {
    const { port } = await serve((stream) => {
      stream.handler = { data() {}, streamClosed() {} };
    });
    const raw = await connectRawHttp2(port);
    closers.push(() => raw.close());
    raw.headers(
      1,
      grpcRequestHeaders("/a").filter(([n]) => n !== ":path"),
    );
    await raw.waitFor((f) => f.type === frameType.rstStream && f.streamId === 1);
    expect(raw.resets().get(1)).toBe(h2Errors.protocolError);
    raw.headers(4, grpcRequestHeaders("/a"));
    await raw.waitFor((f) => f.type === frameType.goaway);
    expect(raw.goaway()?.code).toBe(h2Errors.protocolError);
    await raw.closed;
  });

  it("answers a connection that does not start with the preface with GOAWAY", async () => {
    const { port } = await serve(echo);
    const raw = await connectRawHttp2(port, { sendPreface: false });
    closers.push(() => raw.close());
    raw.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await raw.waitFor((f) => f.type === frameType.goaway);
    expect(raw.goaway()?.code).toBe(h2Errors.protocolError);
    await raw.closed;
  });

  it("reads frames cut anywhere across reads: in the preface, a frame's head, its payload, at its end", async () => {
    const { port } = await serve(echo);
    // The server's SETTINGS is acknowledged inside the cut stream, not between its pieces.
    const raw = await connectRawHttp2(port, { sendPreface: false, ackSettings: false });
    closers.push(() => raw.close());
    const bodies = [
      Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7) & 0xff)),
      Buffer.from("small body"),
    ];
    const stream = Buffer.concat([
      preface,
      settingsFrame(),
      encodeFrame(frameType.settings, flags.ack, 0),
      ...[1, 3].flatMap((id, i) => {
        const body = bodies[i] as Buffer;
        const frames = [
          encodeFrame(
            frameType.headers,
            flags.endHeaders,
            id,
            headerBlock(grpcRequestHeaders("/a")),
          ),
        ];
        for (let at = 0; at < body.length; at += 16_384) {
          const last = at + 16_384 >= body.length;
          const piece = body.subarray(at, at + 16_384);
          frames.push(encodeFrame(frameType.data, last ? flags.endStream : 0, id, piece));
        }
        return frames;
      }),
    ]);
    // Pieces of 1, 5, 9, 10, 3,000 and 7 bytes in turn, each written after a pause (its own read).
    const sizes = [1, 5, 9, 10, 3000, 7];
    for (let at = 0, n = 0; at < stream.length; n++) {
      const size = sizes[n % sizes.length] as number;
      raw.write(stream.subarray(at, at + size));
      at += size;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    for (const id of [1, 3]) {
      await raw.waitFor(
        (f) => f.type === frameType.headers && f.streamId === id && (f.flags & 1) === 1,
      );
      const data = raw.frames.filter((f) => f.type === frameType.data && f.streamId === id);
      expect(
        Buffer.concat(data.map((f) => f.payload)).equals(bodies[id === 1 ? 0 : 1] as Buffer),
      ).toBe(true);
    }
    expect(raw.goaway()).toBeUndefined();
  });

  it("sends a prefix and a body as one DATA frame, and splits them where the client's window ends", async () => {
    const body = Buffer.alloc(300, 7);
    const prefix = Buffer.from([0, 0, 0, 1, 44]);
    const { port } = await serve((stream) => {
      stream.handler = {
        data(_bytes, end) {
          if (!end) return;
          stream.respond([[":status", "200"]]);
          stream.end(body, [["grpc-status", "0"]], prefix);
        },
        streamClosed() {},
      };
    });
    const dataOf = (raw: RawHttp2, id: number) =>
      raw.frames.filter((f) => f.type === frameType.data && f.streamId === id);
    // A window that takes it all: one frame, the prefix first.
    const wide = await connectRawHttp2(port);
    closers.push(() => wide.close());
    wide.headers(1, grpcRequestHeaders("/a"), true);
    await wide.waitFor(
      (f) => f.type === frameType.headers && f.streamId === 1 && (f.flags & 1) === 1,
    );
    const frames = dataOf(wide, 1);
    expect(frames.map((f) => f.payload.length)).toEqual([305]);
    expect(Buffer.concat([prefix, body]).equals(frames[0]?.payload as Buffer)).toBe(true);
    // A stream window of 3 bytes: the prefix is cut, and the rest follows each window update.
    const narrow = await connectRawHttp2(port, { settings: [[settingId.initialWindowSize, 3]] });
    closers.push(() => narrow.close());
    await narrow.waitFor((f) => f.type === frameType.settings && f.flags === 1);
    narrow.headers(1, grpcRequestHeaders("/a"), true);
    await narrow.waitFor((f) => f.type === frameType.data && f.streamId === 1);
    narrow.windowUpdate(1, 100);
    await narrow.waitFor(
      (f) => f.type === frameType.data && f.streamId === 1 && f.payload.length === 100,
    );
    narrow.windowUpdate(1, 1000);
    await narrow.waitFor(
      (f) => f.type === frameType.headers && f.streamId === 1 && (f.flags & 1) === 1,
    );
    const split = dataOf(narrow, 1);
    expect(split.map((f) => f.payload.length)).toEqual([3, 100, 202]);
    expect(Buffer.concat(split.map((f) => f.payload)).equals(Buffer.concat([prefix, body]))).toBe(
      true,
    );
  });

  it("counts DATA past the stream window as a flow-control error of that stream", async () => {
    const { port } = await serve(
      (stream) => {
        stream.pause();
        stream.handler = { data() {}, streamClosed() {} };
      },
      { streamWindowBytes: 16_384 },
    );
    const raw = await connectRawHttp2(port);
    closers.push(() => raw.close());
    await raw.waitFor((f) => f.type === frameType.settings && f.flags === 0);
    raw.headers(1, grpcRequestHeaders("/a"));
    raw.data(1, Buffer.alloc(16_000));
    raw.data(1, Buffer.alloc(1_000));
    await raw.waitFor((f) => f.type === frameType.rstStream && f.streamId === 1);
    expect(raw.resets().get(1)).toBe(h2Errors.flowControlError);
    expect(raw.isClosed).toBe(false);
  });
});

it("sends a PING and hears its ACK", async () => {
  const { port, sessions } = await serve(echo);
  const raw = await connectRawHttp2(port);
  closers.push(() => raw.close());
  await raw.waitFor((f) => f.type === frameType.settings && f.flags === 0);
  const acked = new Promise<Error | null>((resolve) => sessions[0]?.ping(resolve));
  expect(await acked).toBe(null);
  // The preface's SETTINGS announce what the session enforces.
  const settings = raw.frames.find((f) => f.type === frameType.settings && f.flags === 0);
  const values = new Map<number, number>();
  for (let at = 0; at + 6 <= (settings?.payload.length ?? 0); at += 6) {
    values.set(
      settings?.payload.readUInt16BE(at) ?? 0,
      settings?.payload.readUInt32BE(at + 2) ?? 0,
    );
  }
  expect(values.get(3)).toBe(100);
  expect(values.get(6)).toBe(16 * 1024);
  expect(values.get(2)).toBe(0);
});
