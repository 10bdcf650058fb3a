/**
 * Hono behind the north ports (the CLI's fallback for paths that are not RPCs) over HTTP/2
 * and HTTP/1.1: Hono's streaming helpers set `transfer-encoding: chunked`, which HTTP/2
 * forbids; the CLI's listener drops it, so streamed responses work on either protocol.
 */
import http2 from "node:http2";
import { Hono } from "hono";
import { streamText } from "hono/streaming";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { honoRequestListener } from "../../src/cli-runner.ts";
import { type Gateway, type StartGatewayOptions, startGateway } from "../../src/gateway.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { exampleConfig } from "../support/stack.ts";

let broker: Broker;
let gateway: Gateway;
let url: string;

beforeAll(async () => {
  broker = await startBroker({ port: 0 });
  const app = new Hono();
  app.get("/stream", (c) =>
    streamText(c, async (stream) => {
      await stream.writeln("one");
      await stream.sleep(20); // the two chunks leave separately (not a wait of the test)
      await stream.writeln("two");
    }),
  );
  app.get("/plain", (c) => c.text("plain\n"));
  const config = exampleConfig(broker.bootstrap, 1);
  config.west = [];
  gateway = await startGateway(config, {
    logger: silentLogger,
    fallback: honoRequestListener(app) as unknown as StartGatewayOptions["fallback"],
  });
  url = `http://127.0.0.1:${gateway.north[0]?.ports[0]}`;
});

afterAll(async () => {
  await gateway?.close(0);
  await broker?.close();
});

function http2Get(path: string) {
  return new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const session = http2.connect(url);
      session.on("error", reject);
      const req = session.request({ ":method": "GET", ":path": path });
      let headers: http2.IncomingHttpHeaders = {};
      let body = "";
      req.on("response", (h) => {
        headers = h;
      });
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => {
        body += chunk;
      });
      req.on("end", () => {
        session.close();
        resolve({ status: Number(headers[":status"]), headers, body });
      });
      req.on("error", (error) => {
        session.close();
        reject(error);
      });
      req.end();
    },
  );
}

test("hono.stream.http2.and.http1", async () => {
  const h2 = await http2Get("/stream");
  expect(h2.status).toBe(200);
  expect(h2.body).toBe("one\ntwo\n");
  expect(h2.headers["transfer-encoding"]).toBeUndefined();
  expect(String(h2.headers["content-type"])).toMatch(/^text\/plain/);

  const h1 = await fetch(`${url}/stream`);
  expect(h1.status).toBe(200);
  expect(await h1.text()).toBe("one\ntwo\n");

  const plain = await http2Get("/plain");
  expect(plain.status).toBe(200);
  expect(plain.body).toBe("plain\n");
  const missing = await http2Get("/absent");
  expect(missing.status).toBe(404);
});
