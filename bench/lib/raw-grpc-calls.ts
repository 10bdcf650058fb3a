/**
 * Echo calls over raw node:http2 streams, for the load clients: the streaming counterpart
 * of h2load for unary. A gRPC call is a POST carrying length-prefixed frames; the request
 * frame is encoded once, and each reply frame is checked byte for byte against it (an
 * EchoResponse encodes exactly as the EchoRequest with the same message), so the client
 * spends next to nothing per message and leaves the 2 cores to what is measured. Every
 * call still checks every reply's content, the reply count and `grpc-status: 0`.
 */
import * as http2 from "node:http2";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "./echo-payload.ts";
import { bidiMessages, methodOf, type Scenario, serverStreamReplies } from "./scenarios.ts";

/** Splits a gRPC body into frame payloads as chunks arrive. */
export function createFrameReader(onFrame: (payload: Uint8Array) => void) {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      onFrame(pending.subarray(5, 5 + length));
      pending = pending.subarray(5 + length);
    }
  };
}

/** The grpc-status of a response (trailers, or headers of a trailers-only answer). */
function statusOf(headers: http2.IncomingHttpHeaders | undefined): string | undefined {
  const value = headers?.["grpc-status"];
  return Array.isArray(value) ? value[0] : value;
}

/** A call of `scenario` on one of `sessions`, throwing unless every echo and status 0 arrive. */
export function rawCallOf(
  scenario: Scenario,
): (session: http2.ClientHttp2Session) => Promise<void> {
  const payload = Buffer.from(echoRequestBytes(echoTextOfSize(scenario.payloadBytes)));
  const frame = Buffer.from(grpcFrame(payload));
  const path = `/grpc.examples.echo.Echo/${methodOf(scenario.kind)}`;
  const expected =
    scenario.kind === "bidi"
      ? bidiMessages
      : scenario.kind === "server-stream"
        ? serverStreamReplies
        : 1;
  return (session) =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      let received = 0;
      let failure: Error | undefined;
      let status: string | undefined;
      const fail = (error: Error) => {
        failure ??= error;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      stream.on("response", (headers) => {
        status = statusOf(headers) ?? status;
      });
      stream.on("trailers", (trailers) => {
        status = statusOf(trailers) ?? status;
      });
      stream.on(
        "data",
        createFrameReader((reply) => {
          if (!payload.equals(reply)) return fail(new Error("echo differs from request"));
          received++;
          if (scenario.kind !== "bidi") return;
          if (received < bidiMessages) stream.write(frame);
          else stream.end();
        }),
      );
      stream.on("error", (error) => fail(error));
      stream.on("close", () => {
        if (failure) return reject(failure);
        if (status !== "0") return reject(new Error(`grpc-status ${status}`));
        if (received !== expected) {
          return reject(new Error(`${received} replies, expected ${expected}`));
        }
        resolve();
      });
      if (scenario.kind === "bidi") stream.write(frame);
      else stream.end(frame);
    });
}

/** `count` HTTP/2 sessions to `url`, connected. */
export async function connectSessions(
  url: string,
  count: number,
): Promise<http2.ClientHttp2Session[]> {
  const sessions = Array.from({ length: Math.max(1, count) }, () => http2.connect(url));
  await Promise.all(
    sessions.map(
      (session) =>
        new Promise<void>((resolve, reject) => {
          session.once("connect", () => resolve());
          session.once("error", reject);
        }),
    ),
  );
  for (const session of sessions) session.on("error", () => {});
  return sessions;
}
