/**
 * Ctrl-C (SIGINT) and SIGTERM drain: calls already in flight through Kafka finish OK, new
 * connections are refused meanwhile, and the process then exits 0. The gateway runs the
 * example config unchanged as a child process, on free ports (`--ephemeral-ports`).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { exitCode, type GatewayProcess, spawnExample } from "../support/gateway-process.ts";

let echo: EchoServer;
const running: GatewayProcess[] = [];
const brokers: Broker[] = [];

beforeAll(async () => {
  echo = await startEchoServer({ host: "127.0.0.1", port: 0 });
});

// A test that failed midway leaves its gateway running; kill it before the next one starts.
afterEach(async () => {
  for (const proc of running.splice(0)) await proc.kill();
  for (const broker of brokers.splice(0)) await broker.close();
});

afterAll(async () => {
  await echo?.close();
});

/** The example, unchanged, on free ports, with a broker of its own (a fresh consumer group). */
async function startExample(): Promise<GatewayProcess> {
  const broker = await startBroker({ port: 0 });
  brokers.push(broker);
  const proc = spawnExample("bun", broker.bootstrap, echo.port);
  running.push(proc);
  return proc;
}

/** Resolves once the echo upstream has received a message with `text`. */
async function upstreamReceived(text: string, timeoutMs = 20_000) {
  await vi.waitFor(
    () => {
      if (!echo.requests.some((r) => r.messages.includes(text)))
        throw new Error(`the upstream never received "${text}"`);
    },
    { timeout: timeoutMs, interval: 20 },
  );
}

describe("signals drain in-flight calls", () => {
  test.each(["SIGINT", "SIGTERM"] as const)("drain.%s", { timeout: 60_000 }, async (signal) => {
    const proc = await startExample();
    const ready = await proc.ready();
    const port = ready.north[0]?.[0];
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(7151);
    const baseUrl = `http://127.0.0.1:${port}`;
    const client = createClient(Echo, createGrpcTransport({ baseUrl }));

    const unaryText = `delay:1500:unary ${signal}`;
    const streamText = `delay:1500:stream:2:stream ${signal}`;
    const events: string[] = [];
    const unary = client.unaryEcho({ message: unaryText }).then((r) => {
      events.push("unary done");
      return r;
    });
    const stream = (async () => {
      const texts: string[] = [];
      for await (const r of client.serverStreamingEcho({ message: streamText })) {
        texts.push(r.message);
      }
      events.push("stream done");
      return texts;
    })();
    unary.catch(() => {});
    stream.catch(() => {});
    // Both calls went through Kafka and are waiting on the slow upstream.
    await upstreamReceived(unaryText);
    await upstreamReceived(streamText);

    proc.signal(signal);
    const exited = proc.exited.then((code) => {
      events.push("exited");
      return code;
    });
    await proc.waitForStdout(/"msg":"stopping: draining in-flight calls"/);
    // While draining, the listener takes no new connections.
    const late = createClient(Echo, createGrpcTransport({ baseUrl }));
    const refused = await late.unaryEcho({ message: `too late ${signal}` }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    // Refused (or reset, when the connection was still in the listen backlog at close).
    expect(refused).toBeInstanceOf(ConnectError);
    expect(refused?.code).not.toBe(Code.DeadlineExceeded);

    expect((await unary).message).toBe(unaryText);
    expect(await stream).toEqual([streamText, streamText]);
    expect(await exitCode(proc, 30_000)).toBe(0);
    await exited;
    expect(events.indexOf("exited")).toBe(2);
    expect(proc.stdout()).toContain(`"signal":"${signal}"`);
    expect(proc.stdout()).toContain('"msg":"stopped"');
    expect(echo.requests.some((r) => r.messages.includes(`too late ${signal}`))).toBe(false);
  });

  test("second.signal.stops.at.once", { timeout: 60_000 }, async () => {
    const proc = await startExample();
    const ready = await proc.ready();
    const client = createClient(
      Echo,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${ready.north[0]?.[0]}` }),
    );
    // A call that would keep the drain waiting for a minute.
    const text = "delay:60000:never waited for";
    const abandon = new AbortController();
    const slow = client.unaryEcho({ message: text }, { signal: abandon.signal });
    slow.catch(() => {});
    await upstreamReceived(text);
    proc.signal("SIGINT");
    await proc.waitForStdout(/"msg":"stopping: draining in-flight calls"/);
    // The same signal again at once counts as the first one (wrappers forward Ctrl-C) ...
    proc.signal("SIGINT");
    // Nothing happens for 1.5 s: the repeated signal does not stop the drain.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(proc.stdout()).not.toContain("second signal");
    // ... a second Ctrl-C a moment later stops without waiting for the call.
    const second = Date.now();
    proc.signal("SIGINT");
    expect(await exitCode(proc, 20_000)).toBe(130);
    expect(Date.now() - second).toBeLessThan(15_000);
    expect(proc.stdout()).toContain('"msg":"second signal: stopping without draining"');
    expect(proc.stdout()).not.toContain('"msg":"stopped"');
    // (Node's HTTP/2 client does not always fail a stream whose connection closed after a
    // GOAWAY, so the call itself is not awaited.)
    abandon.abort();
  });
});
