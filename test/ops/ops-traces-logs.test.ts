/**
 * One call, followed everywhere: its log lines on north and west carry the same correlation
 * id; its W3C traceparent crosses Kafka, so north's server span and west's client span share
 * the trace (west's is the child of north's, the upstream sees west's), and both spans carry
 * the correlation id. Spans go to a tiny OTLP/HTTP receiver on loopback via the OpenTelemetry
 * SDK's exporter. Gateway failures are logged at error whatever the level.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLogger } from "../../src/ops/logger.ts";
import { eventually, type OpsStack, startOpsStack } from "./ops-fixture.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number; message?: string };
}

/** An OTLP/HTTP JSON trace receiver: keeps every span posted to /v1/traces. */
async function startReceiver() {
  const spans: OtlpSpan[] = [];
  const resources: unknown[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.headers["content-type"] === "application/json") {
        const payload = JSON.parse(body) as {
          resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of payload.resourceSpans) {
          resources.push(rs.resource);
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    resources,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}

const spanKindServer = 2;
const spanKindClient = 3;
const statusError = 2;

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let stack: OpsStack;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  receiver = await startReceiver();
  stack = await startOpsStack({
    otlpLocation: receiver.url,
    spanBatchDelayMs: 50,
    logger: createLogger("debug", (line) => lines.push(JSON.parse(line))),
    configure(config) {
      config.telemetry = {
        attributes: { "service.namespace": "ops-test" },
        metrics: [],
        bindings: {},
        exporters: [],
      };
    },
  });
});

afterAll(async () => {
  await stack?.close();
  await receiver?.close();
});

/** The correlation id north gave the call made with this idempotency key. */
function correlationIdFor(key: string): string {
  const line = lines.find(
    (l) => l.msg === "north call" && String(l.correlationId).startsWith(`${key}-`),
  );
  if (!line) throw new Error(`no north call line for ${key}`);
  return line.correlationId as string;
}

function spansOf(correlationId: string): OtlpSpan[] {
  return receiver.spans.filter(
    (s) => attribute(s, "messaging.message.conversation_id") === correlationId,
  );
}

describe("following one call", () => {
  test("logs.share.the.correlation.id.across.north.and.west", async () => {
    await stack.client.unaryEcho(
      { message: "logged" },
      { headers: { "idempotency-key": "log-1" } },
    );
    const id = correlationIdFor("log-1");
    await eventually(() => lines.some((l) => l.correlationId === id && l.msg === "west call"));
    const mine = lines.filter((l) => l.correlationId === id);
    const northLine = mine.find((l) => l.msg === "north call");
    const westLine = mine.find((l) => l.msg === "west call");
    expect(northLine).toMatchObject({
      level: "debug",
      binding: "north_grpc_kafka_mapping",
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      status: 0,
      requests: 1,
      responses: 1,
    });
    expect(westLine).toMatchObject({
      level: "debug",
      binding: "west_kafka_grpc_remote_server",
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      status: 0,
      attempts: 1,
      replyRecords: 2,
    });
    // One line per call and side, nothing else about it at debug.
    expect(mine.map((l) => l.msg).sort()).toEqual(["north call", "west call"]);
  });

  test("traces.cross.kafka.with.the.incoming.traceparent", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentSpanId = "00f067aa0ba902b7";
    await stack.client.unaryEcho(
      { message: "traced" },
      {
        headers: {
          traceparent: `00-${traceId}-${parentSpanId}-01`,
          "idempotency-key": "trace-1",
        },
      },
    );
    const id = correlationIdFor("trace-1");
    await eventually(() => spansOf(id).length === 2);
    const server = spansOf(id).find((s) => s.kind === spanKindServer) as OtlpSpan;
    const client = spansOf(id).find((s) => s.kind === spanKindClient) as OtlpSpan;
    expect(server).toMatchObject({
      traceId,
      parentSpanId,
      name: "grpc.examples.echo.Echo/UnaryEcho",
    });
    expect(client).toMatchObject({
      traceId,
      parentSpanId: server.spanId,
      name: "grpc.examples.echo.Echo/UnaryEcho",
    });
    for (const span of [server, client]) {
      expect(attribute(span, "rpc.system")).toBe("grpc");
      expect(attribute(span, "rpc.service")).toBe("grpc.examples.echo.Echo");
      expect(attribute(span, "rpc.method")).toBe("UnaryEcho");
      expect(attribute(span, "messaging.destination.name")).toBe("echo-requests");
      expect(Number(attribute(span, "rpc.grpc.status_code"))).toBe(0);
    }
    expect(attribute(client, "server.address")).toBe(`127.0.0.1:${stack.echo.port}`);
    // The upstream is called with west's span as its parent.
    const upstream = stack.echo.requests.find((r) => r.messages.includes("traced"));
    expect(upstream?.headers.get("traceparent")).toBe(`00-${traceId}-${client.spanId}-01`);
    expect(JSON.stringify(receiver.resources[0])).toContain("ops-test");
  });

  test("traces.start.at.north.without.a.traceparent.and.record.errors", async () => {
    const error = await stack.client
      .unaryEcho({ message: "error:5:nope" }, { headers: { "idempotency-key": "trace-2" } })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error?.code).toBe(Code.NotFound);
    const id = correlationIdFor("trace-2");
    await eventually(() => spansOf(id).length === 2);
    const server = spansOf(id).find((s) => s.kind === spanKindServer) as OtlpSpan;
    const client = spansOf(id).find((s) => s.kind === spanKindClient) as OtlpSpan;
    expect(server.parentSpanId ?? "").toBe("");
    expect(client.traceId).toBe(server.traceId);
    expect(client.parentSpanId).toBe(server.spanId);
    for (const span of [server, client]) {
      expect(Number(attribute(span, "rpc.grpc.status_code"))).toBe(Code.NotFound);
      expect(span.status?.code).toBe(statusError);
      expect(span.status?.message).toBe("nope");
    }
  });
});

describe("gateway failures", () => {
  test("logs.errors.at.any.level.with.the.correlation.id", async () => {
    const errors: Record<string, unknown>[] = [];
    // No west: the reply never comes, and north's default reply timeout ends the call.
    const local = await startOpsStack({
      logger: createLogger("error", (line) => errors.push(JSON.parse(line))),
      configure(config) {
        config.west = [];
        const north = config.north[0];
        if (north) north.options = { ...north.options, defaultTimeoutMs: 300 };
      },
    });
    try {
      const failure = await local.client
        .unaryEcho({ message: "lost" }, { headers: { "idempotency-key": "lost-1" } })
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      expect(failure).toBeInstanceOf(ConnectError);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        level: "error",
        msg: "no reply in time",
        binding: "north_grpc_kafka_mapping",
        method: "UnaryEcho",
        status: failure?.code,
      });
      expect(String(errors[0]?.correlationId)).toMatch(/^lost-1-[0-9a-f]{32}$/);
    } finally {
      await local.close();
    }
  });
});
