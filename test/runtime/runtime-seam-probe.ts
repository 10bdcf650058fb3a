/**
 * Runs src/runtime's functions in the runtime that runs this file and prints what they
 * answer as one JSON line (runtime-seam.test.ts starts it under Node, Bun and Deno).
 * `unref` mode instead arms a 60 s timer through unrefTimer and a 100 ms one that is not: the
 * process should print "kept timer fired" and exit without waiting for the first.
 *
 *   bun test/runtime/runtime-seam-probe.ts [unref]   (REPOSITORY_ROOT=<path of the clone>)
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { sessionBytesWritten, sessionQueuedBytes } from "../../src/runtime/http2-backpressure.ts";
import { endSoon, sendTrailersSoon } from "../../src/runtime/http2-batching.ts";
import { http2WindowSettings, widenConnectionWindow } from "../../src/runtime/http2-windows.ts";
import {
  repositoryFile,
  runtimeDescription,
  runtimeName,
  unrefTimer,
  verifiesClientCertificates,
} from "../../src/runtime/runtime.ts";

/** What one call over the probe's HTTP/2 server came back with. */
interface CallAnswer {
  status: number | undefined;
  body: string;
  trailers: Record<string, unknown>;
}

function call(client: http2.ClientHttp2Session, path: string): Promise<CallAnswer> {
  return new Promise((resolve, reject) => {
    const stream = client.request({ ":path": path, ":method": "POST" });
    const answer: CallAnswer = { status: undefined, body: "", trailers: {} };
    stream.on("response", (headers) => {
      answer.status = headers[":status"];
    });
    stream.on("trailers", (trailers) => {
      answer.trailers = { ...trailers };
    });
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      answer.body += chunk;
    });
    stream.on("end", () => resolve(answer));
    stream.on("error", reject);
    stream.end();
  });
}

/** Three concurrent calls to a server that ends and trails its streams through the seam. */
async function http2Answers() {
  let remoteInitialWindowSize: number | undefined;
  const server = http2.createServer({ settings: http2WindowSettings });
  server.on("session", (session) => {
    session.on("remoteSettings", (settings) => {
      remoteInitialWindowSize = settings.initialWindowSize;
    });
  });
  server.on("stream", (stream, headers) => {
    stream.respond({ ":status": 200 }, { waitForTrailers: true });
    stream.on("wantTrailers", () =>
      sendTrailersSoon(stream, { "x-status": "0", "x-path": String(headers[":path"]) }),
    );
    stream.write(`answer to ${headers[":path"]}`);
    endSoon(() => stream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const client = http2.connect(`http://127.0.0.1:${port}`, { settings: http2WindowSettings });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  widenConnectionWindow(client);
  const calls = await Promise.all(["/a", "/b", "/c"].map((path) => call(client, path)));
  const state = client.state as { localWindowSize?: number } | undefined;
  const answers = {
    calls,
    clientLocalWindowSize: state?.localWindowSize ?? null,
    remoteInitialWindowSize: remoteInitialWindowSize ?? null,
  };
  client.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return answers;
}

/** Reply bytes a server writes to a client that does not read. */
const unreadBytes = 4 * 1024 * 1024;

/**
 * What the backpressure seam sees while a client does not read a 4 MiB answer (default
 * windows), and after it reads it all: the bytes held (the stream's buffer plus what the
 * runtime queues on the session) and the bytes written to the socket.
 */
async function backpressureAnswers() {
  let held = 0;
  let queued = 0;
  let writtenWhileUnread = 0;
  let serverStream: http2.ServerHttp2Stream | undefined;
  let wrote = (): void => {};
  const written = new Promise<void>((resolve) => {
    wrote = resolve;
  });
  const server = http2.createServer();
  server.on("stream", (stream) => {
    serverStream = stream;
    stream.respond({ ":status": 200 });
    const chunk = Buffer.alloc(256 * 1024, 1);
    for (let i = 0; i < unreadBytes / chunk.length; i++) stream.write(chunk);
    stream.end();
    wrote();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  const request = client.request({ ":path": "/unread", ":method": "POST" });
  request.end();
  request.pause();
  await written;
  // Whatever flow control lets out is out within this (loopback); the rest must wait.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stream = serverStream as http2.ServerHttp2Stream;
  const session = stream.session as http2.ServerHttp2Session;
  queued = sessionQueuedBytes(session);
  held = queued + stream.writableLength;
  writtenWhileUnread = sessionBytesWritten(session);
  let received = 0;
  request.on("data", (chunk: Buffer) => {
    received += chunk.length;
  });
  await new Promise<void>((resolve, reject) => {
    request.on("end", resolve);
    request.on("error", reject);
    request.resume();
  });
  const writtenAfterRead = sessionBytesWritten(session);
  client.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { held, queued, writtenWhileUnread, writtenAfterRead, received };
}

async function answers() {
  const root = process.env.REPOSITORY_ROOT ?? "";
  const source = pathToFileURL(join(root, "src/runtime/runtime.ts")).href;
  const built = pathToFileURL(join(root, "dist/src/runtime/runtime.js")).href;
  return {
    runtimeName,
    runtimeDescription: runtimeDescription(),
    verifiesClientCertificates,
    repositoryFile: {
      fromSource: repositoryFile(source, "package.json", 2),
      fromBuild: repositoryFile(built, "package.json", 2),
      missing: repositoryFile(source, "no/such/file", 2),
    },
    http2: await http2Answers(),
    backpressure: await backpressureAnswers(),
  };
}

if (process.argv.includes("unref")) {
  unrefTimer(setTimeout(() => console.log("unref timer fired"), 60_000));
  setTimeout(() => console.log("kept timer fired"), 100);
} else {
  console.log(JSON.stringify(await answers()));
}
