/**
 * The runtime's floor for memory per pending call: a bare node:http2 server that reads each
 * request stream and never answers, so the harness can compare what one open HTTP/2 stream
 * costs with what one pending call costs in the gateway. Prints `{ready, port}`; `stats`
 * also reports how many streams it holds.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { emitReady, serveCommands } from "../lib/child-channel.ts";
import { heapTypes, processStats } from "../lib/process-stats.ts";

const held = new Set<http2.ServerHttp2Stream>();
const server = http2.createServer();
server.on("stream", (stream) => {
  held.add(stream);
  stream.on("data", () => {});
  stream.on("close", () => held.delete(stream));
  stream.on("error", () => {});
});
server.on("session", (session) => session.on("error", () => {}));
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));

serveCommands(
  (command) => {
    if (command.cmd === "stats")
      return { held: held.size, ...processStats({ gc: command.gc === true }) };
    if (command.cmd === "heap-types") return heapTypes();
    throw new Error(`unknown command ${command.cmd}`);
  },
  async () => {
    for (const stream of held) stream.close();
    server.close();
  },
);
emitReady({ port: (server.address() as AddressInfo).port });
