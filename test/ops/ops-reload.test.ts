/**
 * Hot reload of a watched zilla.yaml: a change adding a route is served by the next call,
 * while a bidi stream opened before it goes on undisturbed; an invalid file is refused and
 * the running config stays; a change that needs a restart is reported, not applied.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { formatConfigErrors } from "../../src/config/format-pipelines.ts";
import { loadConfig } from "../../src/config/load-config.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { type ConfigWatch, watchConfigFile } from "../../src/ops/config-watch.ts";
import { reloadOutcomes } from "../../src/ops/gateway-metrics.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { replyTopic, requestTopic } from "../support/stack.ts";
import { eventually, gatewayYaml, sample } from "./ops-fixture.ts";

const unary = "grpc.examples.echo.Echo/UnaryEcho";
const bidi = "grpc.examples.echo.Echo/BidirectionalStreamingEcho";
const clientStreaming = "grpc.examples.echo.Echo/ClientStreamingEcho";

let broker: Broker;
let echo: EchoServer;
let gateway: Gateway | undefined;
let watch: ConfigWatch | undefined;
let dir: string;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: 2 });
  broker.createTopic(requestTopic, 2);
  broker.createTopic(replyTopic, 2);
  echo = await startEchoServer();
  dir = mkdtempSync(join(tmpdir(), "gateway-reload-"));
});

afterAll(async () => {
  await watch?.close();
  await gateway?.close(1_000);
  await echo?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A request stream the test feeds one message at a time. */
function requestQueue() {
  const waiting: ((text: string | undefined) => void)[] = [];
  const queued: (string | undefined)[] = [];
  const put = (text: string | undefined) => {
    const w = waiting.shift();
    if (w) w(text);
    else queued.push(text);
  };
  const take = () =>
    new Promise<string | undefined>((resolve) => {
      if (queued.length > 0) resolve(queued.shift());
      else waiting.push(resolve);
    });
  return {
    send: (message: string) => put(message),
    end: () => put(undefined),
    async *messages(): AsyncGenerator<{ message: string }> {
      for (;;) {
        const message = await take();
        if (message === undefined) return;
        yield { message };
      }
    },
  };
}

test("reload.adds.a.route.while.a.stream.goes.on", { timeout: 60_000 }, async () => {
  const path = join(dir, "zilla.yaml");
  const yaml = (routedMethods: string[], extra = "") =>
    gatewayYaml({ bootstrap: broker.bootstrap, echoPort: echo.port, routedMethods, extra });
  writeFileSync(path, yaml([unary, bidi]));
  const registry = await loadServiceRegistry();
  const logger = createLogger("info", (line) => lines.push(JSON.parse(line)));
  const load = async () => {
    const result = await loadConfig(path, { registry, env: {}, kafkaServers: [broker.bootstrap] });
    if (result.ok) return result.config;
    logger.error("invalid configuration", { errors: formatConfigErrors(result.errors) });
    return undefined;
  };
  const config = await load();
  if (!config) throw new Error("the test config does not load");
  gateway = await startGateway(config, { logger, registry });
  // Every outcome is counted from the start, at 0.
  const before = await gateway.telemetry.registry.expose();
  for (const result of reloadOutcomes) {
    expect(sample(before, "gateway_config_reloads_total", { result })).toBe(0);
  }
  watch = watchConfigFile({ path, load, gateway, logger, debounceMs: 100 });
  const client = createClient(
    Echo,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${gateway.north[0]?.ports[0]}` }),
  );
  const clientStream = (texts: string[]) =>
    client.clientStreamingEcho(
      (async function* () {
        for (const message of texts) yield { message };
      })(),
    );

  // Not routed yet.
  const unrouted = await clientStream(["x"]).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(unrouted?.code).toBe(Code.Internal);

  // A long stream on the old config.
  const requests = requestQueue();
  const replies = client.bidirectionalStreamingEcho(requests.messages())[Symbol.asyncIterator]();
  requests.send("before");
  expect((await replies.next()).value?.message).toBe("before");

  writeFileSync(path, yaml([unary, bidi, clientStreaming]));
  await eventually(() => lines.some((l) => l.msg === "config reloaded"));
  expect(lines.find((l) => l.msg === "config reloaded")?.applied).toEqual([
    "north north_grpc_kafka_mapping",
  ]);
  expect((await clientStream(["a", "b"])).message).toBe("a,b");

  // The old stream is still served, to its end.
  requests.send("after");
  expect((await replies.next()).value?.message).toBe("after");
  requests.end();
  expect((await replies.next()).done).toBe(true);

  // An invalid file is refused whole; the running config (with the new route) stays.
  writeFileSync(path, `${yaml([unary])}\nnonsense: true\n`);
  await eventually(() => lines.some((l) => l.msg === "config change refused"));
  expect(String(lines.find((l) => l.msg === "invalid configuration")?.errors)).toContain(
    "nonsense",
  );
  expect((await clientStream(["still"])).message).toBe("still");

  // A change only a restart can make is reported and left alone.
  writeFileSync(
    path,
    yaml([unary, bidi, clientStreaming]).replace(
      "acks: leader_only\n    routes:",
      "acks: none\n    routes:",
    ),
  );
  await eventually(() => lines.some((l) => l.msg === "config change needs a restart"));
  expect(lines.find((l) => l.msg === "config change needs a restart")?.needsRestart).toEqual([
    "west west_kafka_grpc_remote_server options changed: restart the gateway to apply",
  ]);
  expect(gateway.config.west[0]?.options.acks).toBe("leader_only");

  // A route change with it is applied; the acks change still waits for a restart.
  writeFileSync(
    path,
    yaml([unary, bidi]).replace("acks: leader_only\n    routes:", "acks: none\n    routes:"),
  );
  await eventually(() => lines.some((l) => l.msg === "config reloaded in part"));
  expect(lines.find((l) => l.msg === "config reloaded in part")?.applied).toEqual([
    "north north_grpc_kafka_mapping",
  ]);

  // One line per changed file, and the metric counts exactly those lines, by result.
  const reloadLines = lines.filter((l) => typeof l.result === "string");
  expect(reloadLines.map((l) => [l.msg, l.result])).toEqual([
    ["config reloaded", "applied"],
    ["config change refused", "refused"],
    ["config change needs a restart", "restart_needed"],
    ["config reloaded in part", "partial"],
  ]);
  const metrics = await gateway.telemetry.registry.expose();
  for (const result of reloadOutcomes) {
    expect(sample(metrics, "gateway_config_reloads_total", { result }), result).toBe(
      reloadLines.filter((l) => l.result === result).length,
    );
  }
});
