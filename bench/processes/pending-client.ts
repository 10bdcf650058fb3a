/**
 * Opens many unary calls at once and keeps them pending, for the gateway's memory per
 * pending call: raw node:http2 streams (a few bytes of client state each), spread over
 * sessions of at most 100 streams, each sending one gRPC frame and half-closing. `open`
 * resolves once every request is written; `close` cancels them all. Each call carries a
 * `grpc-timeout` of `timeoutS`, so that the gateway's default timeout (30 s) does not end
 * calls that must stay pending while 100,000 of them are opened.
 */
import * as http2 from "node:http2";
import { emitReady, serveCommands } from "../lib/child-channel.ts";
import { echoRequestBytes, grpcFrame } from "../lib/echo-payload.ts";

const streamsPerSession = 100;
let sessions: http2.ClientHttp2Session[] = [];
let responded = 0;
let errors = 0;

async function open(url: string, calls: number, message: string, timeoutS: number) {
  const body = grpcFrame(echoRequestBytes(message));
  const written: Promise<void>[] = [];
  for (let opened = 0; opened < calls; ) {
    const session = http2.connect(url);
    session.on("error", () => {});
    sessions.push(session);
    const count = Math.min(streamsPerSession, calls - opened);
    for (let i = 0; i < count; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/grpc.examples.echo.Echo/UnaryEcho",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": `${timeoutS}S`,
      });
      stream.on("response", () => {
        responded++;
      });
      stream.on("error", () => {
        errors++;
      });
      stream.resume();
      written.push(new Promise<void>((resolve) => stream.end(body, () => resolve())));
    }
    opened += count;
  }
  await Promise.all(written);
  return { opened: calls, sessions: sessions.length, responded, errors };
}

function close() {
  for (const session of sessions) session.destroy();
  sessions = [];
  return { responded, errors };
}

serveCommands(
  (command) => {
    switch (command.cmd) {
      case "open":
        return open(
          String(command.url),
          Number(command.calls),
          String(command.message),
          Number(command.timeoutS ?? 60),
        );
      case "status":
        return { responded, errors };
      case "close":
        return close();
      default:
        throw new Error(`unknown command ${command.cmd}`);
    }
  },
  async () => {
    close();
  },
);
emitReady();
