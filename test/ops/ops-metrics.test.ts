/**
 * Metrics scenario: a known set of calls through north, Kafka and west, then a scrape of the
 * ops port and of the zilla.yaml prometheus endpoint shows exact counts per method and
 * status, message counts and sizes, produce and consume counts, replays, and the group's lag.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { prometheusContentType } from "../../src/ops/metrics.ts";
import { eventually, type OpsStack, sample, startOpsStack } from "./ops-fixture.ts";

const namespace = "example";
const north = { namespace, binding: "north_grpc_kafka_mapping" };
const west = { namespace, binding: "west_kafka_grpc_remote_server" };
const group = "zilla:example-west_kafka_grpc_remote_server";
const unary = { service: "grpc.examples.echo.Echo", method: "UnaryEcho" };
const stream = { service: "grpc.examples.echo.Echo", method: "ServerStreamingEcho" };

let stack: OpsStack;
let exporterUrl: string;

beforeAll(async () => {
  stack = await startOpsStack({
    configure(config) {
      config.telemetry = {
        attributes: {},
        metrics: [],
        bindings: {},
        exporters: [
          {
            name: "prom",
            type: "prometheus",
            endpoints: [{ scheme: "http", port: 0, path: "/prom" }],
          },
        ],
      };
    },
  });
  const [port] = await stack.host.listenExporters("127.0.0.1");
  exporterUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await stack?.close();
});

async function scrape(url = `${stack.opsUrl}/metrics`): Promise<string> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe(prometheusContentType);
  return response.text();
}

/** Sum of the lag samples of the west group over every partition. */
function totalLag(text: string): number {
  return text
    .split("\n")
    .filter((l) => l.startsWith("kafka_consumer_lag{") && l.includes(`group="${group}"`))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

describe("a scrape after known calls", () => {
  test("metrics.exact.counts", async () => {
    const { client } = stack;
    // EchoRequest/EchoResponse bytes: tag, length, text (so text length + 2).
    await client.unaryEcho({ message: "a" });
    await client.unaryEcho({ message: "bb" });
    const idem = { headers: { "idempotency-key": "metrics-k" } };
    await client.unaryEcho({ message: "ccc" }, idem);
    // Same key: west answers from its idempotency store, the upstream is not called again.
    expect((await client.unaryEcho({ message: "ccc" }, idem)).message).toBe("ccc");
    const error = await client.unaryEcho({ message: "error:13:boom" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Internal);
    const replies: string[] = [];
    for await (const r of client.serverStreamingEcho({ message: "stream:3:s" })) {
      replies.push(r.message);
    }
    expect(replies).toHaveLength(3);

    const text = await scrape();
    const at = (name: string, labels: Record<string, string>) => sample(text, name, labels);
    // North, per method and status.
    expect(at("grpc_requests_started_total", { ...north, ...unary })).toBe(5);
    expect(at("grpc_requests_handled_total", { ...north, ...unary, status: "OK" })).toBe(4);
    expect(at("grpc_requests_handled_total", { ...north, ...unary, status: "INTERNAL" })).toBe(1);
    expect(at("grpc_requests_started_total", { ...north, ...stream })).toBe(1);
    expect(at("grpc_requests_handled_total", { ...north, ...stream, status: "OK" })).toBe(1);
    expect(at("grpc_active_requests", { ...north, ...unary })).toBe(0);
    expect(at("grpc_duration_seconds_count", { ...north, ...unary, status: "OK" })).toBe(4);
    expect(at("grpc_duration_seconds_count", { ...north, ...unary, status: "INTERNAL" })).toBe(1);
    expect(
      at("grpc_duration_seconds_bucket", { ...north, ...stream, status: "OK", le: "+Inf" }),
    ).toBe(1);
    expect(at("grpc_requests_per_rpc_sum", { ...north, ...unary })).toBe(5);
    expect(at("grpc_responses_per_rpc_sum", { ...north, ...unary })).toBe(4);
    expect(at("grpc_responses_per_rpc_sum", { ...north, ...stream })).toBe(3);
    expect(at("grpc_request_size_bytes_sum", { ...north, ...unary })).toBe(3 + 4 + 5 + 5 + 15);
    expect(at("grpc_response_size_bytes_sum", { ...north, ...unary })).toBe(3 + 4 + 5 + 5);
    expect(at("grpc_response_size_bytes_sum", { ...north, ...stream })).toBe(3 * 12);
    expect(at("gateway_pending_replies", north)).toBe(0);
    expect(at("gateway_reply_records_dropped_total", north)).toBe(0);
    // Every request record is a message plus the end tombstone.
    expect(at("kafka_produce_duration_seconds_count", north)).toBe(6 * 2);
    // West: the upstream saw one call less (the replay), and read every request record.
    expect(at("grpc_upstream_requests_started_total", { ...west, ...unary })).toBe(4);
    expect(at("grpc_upstream_requests_handled_total", { ...west, ...unary, status: "OK" })).toBe(3);
    expect(
      at("grpc_upstream_requests_handled_total", { ...west, ...unary, status: "INTERNAL" }),
    ).toBe(1);
    expect(at("grpc_upstream_duration_seconds_count", { ...west, ...stream, status: "OK" })).toBe(
      1,
    );
    expect(at("grpc_upstream_retries_total", { ...west, ...unary })).toBe(0);
    expect(at("gateway_idempotent_replays_total", west)).toBe(1);
    expect(at("kafka_produce_duration_seconds_count", west)).toBe(5);
    expect(at("kafka_consume_latency_seconds_count", west)).toBe(6 * 2);

    // The exporter endpoint serves the same registry on its own port and path only.
    const exported = await scrape(`${exporterUrl}/prom`);
    expect(sample(exported, "grpc_requests_started_total", { ...north, ...unary })).toBe(5);
    expect((await fetch(`${exporterUrl}/metrics`)).status).toBe(404);
  });

  test("metrics.lag.and.active.follow.a.slow.call", async () => {
    // Everything so far is committed: no lag.
    await eventually(async () => totalLag(await scrape()) === 0);
    const slow = stack.client.unaryEcho({ message: "delay:3000:slow" });
    await eventually(() => stack.echo.requests.some((r) => r.messages.includes("delay:3000:slow")));
    const during = await scrape();
    expect(sample(during, "grpc_active_requests", { ...north, ...unary })).toBe(1);
    expect(sample(during, "gateway_pending_replies", north)).toBe(1);
    // Its message and end record wait for the reply before they are committed.
    await eventually(async () => totalLag(await scrape()) === 2);
    expect((await slow).message).toBe("delay:3000:slow");
    await eventually(async () => totalLag(await scrape()) === 0);
    const after = await scrape();
    expect(sample(after, "grpc_active_requests", { ...north, ...unary })).toBe(0);
    expect(sample(after, "grpc_requests_handled_total", { ...north, ...unary, status: "OK" })).toBe(
      5,
    );
  });
});
