/**
 * What serving a unary gRPC call over HTTP/2 costs the runtime's `node:http2` server, next to
 * frames read and written straight on the socket: the question behind north's front door
 * (docs/architecture.md, West's upstream connection, did the same for west's client).
 *
 * Two servers, each in a process of its own, answer h2load's unary echo calls (the bench's
 * 100 B EchoRequest; EchoResponse has the same layout, so the body goes back as it came):
 * - `node`: the bench's echo upstream (`src/upstream/echo-server.ts`: `node:http2`, its
 *   uncompressed gRPC path with the turn batching north uses);
 * - `frames`: a measuring stub here, not a server to ship: the connection preface and
 *   SETTINGS, HEADERS decoded with the gateway's HPACK (`src/h2/hpack.ts`), DATA gathered,
 *   and per call one HEADERS, one DATA and one trailers frame, a turn's frames in one socket
 *   write. No flow control on sends, no CONTINUATION, no limits: enough for h2load, no more.
 *
 * Each round runs h2load against each server in turn and reads the server's CPU time
 * (/proc/<pid>/stat) over the run: µs of CPU per call, and calls/s.
 *
 *   npx bun bench/profile/h2-server-cost.ts [--concurrency 64] [--duration-s 5] [--rounds 3]
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { HpackDecoder, HpackEncoder } from "../../src/h2/hpack.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "../lib/echo-payload.ts";
import { parseH2loadOutput } from "../lib/h2load.ts";
import { processCpuSeconds as cpuSeconds } from "../lib/machine-cpu.ts";

const args = parseArgs();
const serve = args.get("serve");

if (serve === "frames") await serveFrames();
else if (serve === "session") await serveSession();
else if (serve === "node") {
  const { startEchoServer } = await import("../../src/upstream/echo-server.ts");
  const echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
  setInterval(() => {
    echo.requests.length = 0;
  }, 500);
  console.log(JSON.stringify({ port: echo.port }));
} else await measure();

async function measure(): Promise<void> {
  const concurrency = Number(args.get("concurrency") ?? 64);
  const durationS = Number(args.get("duration-s") ?? 5);
  const rounds = Number(args.get("rounds") ?? 3);
  const body = `/tmp/h2-server-cost-body-${process.pid}`;
  writeFileSync(body, grpcFrame(echoRequestBytes(echoTextOfSize(100))));
  const connections = Math.min(4, concurrency);
  const streams = Math.max(1, Math.round(concurrency / connections));
  const results: Record<string, { callsPerS: number; usPerCall: number }[]> = {
    node: [],
    session: [],
    frames: [],
  };
  for (let round = 1; round <= rounds; round++) {
    for (const mode of ["node", "session", "frames"] as const) {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--serve", mode], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.once("data", (chunk: Buffer) => resolve(JSON.parse(String(chunk)).port));
        child.once("exit", (code) => reject(new Error(`${mode} server exited (${code})`)));
      });
      const url = `http://127.0.0.1:${port}/grpc.examples.echo.Echo/UnaryEcho`;
      const h2load = (seconds: number) =>
        new Promise<string>((resolve, reject) => {
          const load = spawn("h2load", [
            ...["-D", String(seconds), "-c", String(connections), "-m", String(streams)],
            ...["-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers"],
            ...["-d", body, url],
          ]);
          let out = "";
          load.stdout.on("data", (c: Buffer) => {
            out += c;
          });
          load.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(out))));
        });
      await h2load(1); // warm-up: the JIT settles
      const before = cpuSeconds(child.pid as number);
      const summary = parseH2loadOutput(await h2load(durationS));
      const cpu = cpuSeconds(child.pid as number) - before;
      child.kill();
      const calls = summary.succeeded;
      results[mode]?.push({ callsPerS: calls / durationS, usPerCall: (cpu / calls) * 1e6 });
      console.log(
        `round ${round} ${mode.padEnd(6)} ${Math.round(calls / durationS)} calls/s, ${((cpu / calls) * 1e6).toFixed(1)} µs of server CPU per call`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  for (const mode of ["node", "session", "frames"] as const) {
    const r = results[mode] ?? [];
    console.log(
      `${mode.padEnd(6)} median: ${Math.round(median(r.map((x) => x.callsPerS)))} calls/s, ${median(r.map((x) => x.usPerCall)).toFixed(1)} µs per call`,
    );
  }
  process.exit(0);
}

async function serveFrames(): Promise<void> {
  const encoder = new HpackEncoder();
  const responseHeaders = encoder.encode([
    [":status", "200"],
    ["content-type", "application/grpc"],
  ]);
  const trailers = encoder.encode([["grpc-status", "0"]]);
  const frameHeader = (length: number, type: number, flags: number, id: number) => {
    const h = Buffer.allocUnsafe(9);
    h.writeUIntBE(length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    return h;
  };
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const decoder = new HpackDecoder();
    const bodies = new Map<number, Buffer[]>();
    let input: Buffer = Buffer.alloc(0);
    let prefaceSeen = false;
    let received = 0;
    let out: Buffer[] = [];
    const send = (...parts: Buffer[]) => {
      if (out.length === 0) queueMicrotask(flush);
      out.push(...parts);
    };
    const flush = () => {
      const parts = out;
      out = [];
      socket.write(Buffer.concat(parts));
    };
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(1 << 20, 2);
    const windowUpdate = (id: number, increment: number) => {
      const p = Buffer.allocUnsafe(4);
      p.writeUInt32BE(increment, 0);
      return [frameHeader(4, 8, 0, id), p];
    };
    send(frameHeader(6, 4, 0, 0), settings, ...windowUpdate(0, (16 << 20) - 65_535));
    const answer = (id: number) => {
      const body = Buffer.concat(bodies.get(id) ?? []);
      bodies.delete(id);
      send(frameHeader(responseHeaders.length, 1, 0x4, id), Buffer.from(responseHeaders));
      send(frameHeader(body.length, 0, 0, id), body);
      send(frameHeader(trailers.length, 1, 0x5, id), Buffer.from(trailers));
    };
    socket.on("data", (chunk: Buffer) => {
      input = input.length === 0 ? chunk : Buffer.concat([input, chunk]);
      let at = 0;
      if (!prefaceSeen) {
        if (input.length < 24) return;
        prefaceSeen = true;
        at = 24;
      }
      while (input.length - at >= 9) {
        const length = input.readUIntBE(at, 3);
        if (input.length - at < 9 + length) break;
        const type = input[at + 3] as number;
        const flags = input[at + 4] as number;
        const id = input.readUInt32BE(at + 5) & 0x7fffffff;
        let payload = input.subarray(at + 9, at + 9 + length);
        at += 9 + length;
        if (type === 0 || type === 1) {
          if (flags & 0x8) payload = payload.subarray(1, payload.length - (payload[0] as number));
        }
        if (type === 0) {
          received += length;
          if (received > 8 << 20) {
            send(...windowUpdate(0, received));
            received = 0;
          }
          bodies.get(id)?.push(Buffer.from(payload));
          if (flags & 0x1) answer(id);
        } else if (type === 1) {
          decoder.decode(flags & 0x20 ? payload.subarray(5) : payload);
          bodies.set(id, []);
          if (flags & 0x1) answer(id);
        } else if (type === 4 && !(flags & 0x1)) {
          send(frameHeader(0, 4, 0x1, 0));
        } else if (type === 6 && !(flags & 0x1)) {
          send(frameHeader(8, 6, 0x1, 0), Buffer.from(payload));
        } else if (type === 3) {
          bodies.delete(id);
        }
      }
      input = at === input.length ? Buffer.alloc(0) : input.subarray(at);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  console.log(JSON.stringify({ port: address.port }));
}

/** The gateway's own server session (src/h2/server-session.ts) answering the same calls. */
async function serveSession(): Promise<void> {
  const { ServerSession } = await import("../../src/h2/server-session.ts");
  const status: [string, string][] = [
    [":status", "200"],
    ["content-type", "application/grpc"],
  ];
  const ok: [string, string][] = [["grpc-status", "0"]];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    new ServerSession(socket, {
      maxConcurrentStreams: 1000,
      maxHeaderListBytes: 65_536,
      onStream(stream) {
        const chunks: Uint8Array[] = [];
        stream.handler = {
          data(bytes, end) {
            if (bytes.length > 0) chunks.push(Buffer.from(bytes));
            if (!end) return;
            stream.respond(status);
            stream.end(Buffer.concat(chunks), ok);
          },
          streamClosed() {},
        };
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  console.log(JSON.stringify({ port: (server.address() as net.AddressInfo).port }));
}
