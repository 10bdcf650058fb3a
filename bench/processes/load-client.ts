/**
 * A gRPC load generator process: on `run` it opens its own HTTP/2 connections to the given
 * url, keeps `concurrency` calls of the scenario in flight for warm-up plus duration, checks
 * every reply, and returns counts and latencies of the measured window. `client: "raw"`
 * makes the calls on raw node:http2 streams (bench/lib/raw-grpc-calls.ts, the default of
 * the harness), `"connect"` with the Connect gRPC client.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { emitReady, serveCommands } from "../lib/child-channel.ts";
import { echoTextOfSize } from "../lib/echo-payload.ts";
import { connectSessions, rawCallOf } from "../lib/raw-grpc-calls.ts";
import {
  bidiMessages,
  type LoadRunRequest,
  runClosedLoop,
  type Scenario,
  serverStreamReplies,
} from "../lib/scenarios.ts";

type EchoClient = Client<typeof Echo>;

/** A one-reader async queue: what the bidi call sends, fed as echoes arrive. */
function createPushable<T>() {
  const buffer: T[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(item: T) {
      buffer.push(item);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      for (;;) {
        const item = buffer.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    },
  };
}

/** One call of the scenario, throwing unless every reply is the expected echo. */
function callOf(scenario: Scenario): (client: EchoClient) => Promise<void> {
  const message = echoTextOfSize(scenario.payloadBytes);
  switch (scenario.kind) {
    case "unary":
      return async (client) => {
        const reply = await client.unaryEcho({ message });
        if (reply.message !== message) throw new Error("unary reply differs from request");
      };
    case "server-stream":
      return async (client) => {
        let count = 0;
        for await (const reply of client.serverStreamingEcho({ message })) {
          if (reply.message !== message) throw new Error("stream reply differs from request");
          count++;
        }
        if (count !== serverStreamReplies) throw new Error(`stream gave ${count} replies`);
      };
    case "bidi":
      return async (client) => {
        const requests = createPushable<{ message: string }>();
        requests.push({ message });
        let count = 0;
        for await (const reply of client.bidirectionalStreamingEcho(requests)) {
          if (reply.message !== message) throw new Error("bidi echo differs from request");
          count++;
          if (count < bidiMessages) requests.push({ message });
          else requests.end();
        }
        if (count !== bidiMessages) throw new Error(`bidi gave ${count} echoes`);
      };
  }
}

async function runRaw(url: string, request: LoadRunRequest) {
  const sessions = await connectSessions(url, request.connections);
  try {
    const call = rawCallOf(request.scenario);
    return await runClosedLoop(request, (worker) => {
      const session = sessions[worker % sessions.length];
      if (!session) throw new Error("no session");
      return call(session);
    });
  } finally {
    for (const session of sessions) session.destroy();
  }
}

async function run(url: string, request: LoadRunRequest) {
  const managers = Array.from(
    { length: Math.max(1, request.connections) },
    () => new Http2SessionManager(url),
  );
  const clients = managers.map((sessionManager) =>
    createClient(Echo, createGrpcTransport({ baseUrl: url, sessionManager })),
  );
  try {
    await Promise.all(managers.map((m) => m.connect()));
    const call = callOf(request.scenario);
    return await runClosedLoop(request, (worker) => {
      const client = clients[worker % clients.length];
      if (!client) throw new Error("no client");
      return call(client);
    });
  } finally {
    for (const m of managers) m.abort();
  }
}

serveCommands(
  (command) => {
    if (command.cmd !== "run") throw new Error(`unknown command ${command.cmd}`);
    if (typeof command.url !== "string") throw new Error("run needs a url");
    const request = command.request as LoadRunRequest;
    return command.client === "raw" ? runRaw(command.url, request) : run(command.url, request);
  },
  async () => {},
);
emitReady();
