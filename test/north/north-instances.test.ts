/**
 * Scenarios that need their own north instances on one broker: two norths sharing a reply
 * topic, north options (default reply timeout, message size limit), route and method
 * selection, and closing with calls in flight.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import type { NorthConfig } from "../../src/config/types.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../src/kafka/protocol/errors.ts";
import type { North } from "../../src/north/north-server.ts";
import { type Responder, startResponder } from "./kafka-responder.ts";
import {
  exampleNorthConfig,
  partitions,
  replyTopic,
  requestTopic,
  startTestNorth,
} from "./north-fixture.ts";

let broker: Broker;
let responder: Responder;
const norths: North[] = [];

beforeAll(async () => {
  broker = await startBroker({ port: 0, defaultPartitions: partitions });
  broker.createTopic(requestTopic, partitions);
  broker.createTopic(replyTopic, partitions);
  responder = await startResponder({ bootstrap: broker.bootstrap, topic: requestTopic });
});

afterAll(async () => {
  await Promise.all(norths.map((n) => n.close(200)));
  await responder?.close();
  await broker?.close();
});

async function north(configure: (config: NorthConfig) => void = () => {}) {
  const config = exampleNorthConfig();
  configure(config);
  const started = await startTestNorth(broker.bootstrap, config);
  norths.push(started.north);
  return started;
}

const failure = (call: Promise<unknown>) => call.then(() => undefined, ConnectError.from);

describe("north instances", () => {
  test("two.north.instances.share.reply.topic", async () => {
    const [a, b] = await Promise.all([north(), north()]);
    // Both readers read every partition of echo-responses; each must hand over only its own.
    const calls = (client: typeof a.client, name: string) =>
      Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          client.unaryEcho({ message: `${name}-${i}` }).then((r) => r.message),
        ),
      );
    const [fromA, fromB] = await Promise.all([calls(a.client, "a"), calls(b.client, "b")]);
    expect(fromA).toEqual(Array.from({ length: 150 }, (_, i) => `a-${i}`));
    expect(fromB).toEqual(Array.from({ length: 150 }, (_, i) => `b-${i}`));
  });

  test("default.timeout.without.deadline", async () => {
    const { client } = await north((c) => {
      c.options.defaultTimeoutMs = 400;
    });
    const started = Date.now();
    const error = await failure(client.unaryEcho({ message: "delay:8000:never in time" }));
    expect(error?.code).toBe(Code.DeadlineExceeded);
    // Well before the reply would have come.
    expect(Date.now() - started).toBeLessThan(6_000);
  });

  test("message.too.large", async () => {
    const { client, url } = await north((c) => {
      c.options.maxMessageBytes = 1_024;
    });
    const text = `big-${"x".repeat(2_000)}`;
    const error = await failure(client.unaryEcho({ message: text }));
    expect(error?.code).toBe(Code.ResourceExhausted);
    // Compressed small on the wire, too large once inflated: refused all the same.
    const gzipClient = createClient(
      Echo,
      createGrpcTransport({ baseUrl: url, sendCompression: compressionGzip, compressMinBytes: 0 }),
    );
    const inflated = await failure(gzipClient.unaryEcho({ message: text }));
    expect(inflated?.code).toBe(Code.ResourceExhausted);
    // Small messages still pass, and the large one never became a record.
    expect((await client.unaryEcho({ message: "small" })).message).toBe("small");
    expect(responder.seen.some((r) => r.value?.includes("big-xxxx"))).toBe(false);
  });

  test("route.missing", async () => {
    const { client } = await north((c) => {
      const [route] = c.routes;
      if (route) route.when = [{ method: "grpc.examples.echo.Echo/UnaryEcho" }];
    });
    expect((await client.unaryEcho({ message: "routed" })).message).toBe("routed");
    const error = await failure(client.clientStreamingEcho((async function* () {})()));
    expect(error?.code).toBe(Code.Internal);
    expect(error?.rawMessage).toContain("no route");
  });

  test("method.not.served", async () => {
    const { client } = await north((c) => {
      c.methods = ["grpc.examples.echo.Echo/UnaryEcho"];
    });
    expect((await client.unaryEcho({ message: "served" })).message).toBe("served");
    const stream = async () => {
      for await (const _ of client.serverStreamingEcho({ message: "not served" })) {
        // unreachable: the method is not served
      }
    };
    expect((await failure(stream()))?.code).toBe(Code.Unimplemented);
  });

  test("close.cancels.calls.after.grace", async () => {
    const { north: closing, client } = await north();
    const call = failure(client.unaryEcho({ message: "delay:10000:outlives the grace" }));
    await responder.waitFor((r) => r.value?.includes("outlives the grace") === true);
    const started = Date.now();
    await closing.close(300);
    const error = await call;
    expect(error?.code).toBe(Code.Unavailable);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test("close.lets.calls.finish.within.grace", async () => {
    const { north: closing, client } = await north();
    const call = client.unaryEcho({ message: "delay:300:finishes in time" }).then(
      (r) => r.message,
      (e: unknown) => ConnectError.from(e).message,
    );
    await responder.waitFor((r) => r.value?.includes("finishes in time") === true);
    await closing.close(10_000);
    expect(await call).toBe("delay:300:finishes in time");
  });

  test("produce.failure.internal", async () => {
    const { client } = await north();
    // Kafka answers, but refuses the batch, and the message again when it is sent alone
    // (too large by itself): not worth retrying, so INTERNAL.
    broker.faults.failNext(ApiKey.Produce, 2, ErrorCode.MESSAGE_TOO_LARGE);
    const error = await failure(client.unaryEcho({ message: "refused by kafka" }));
    expect(error?.code).toBe(Code.Internal);
    expect(error?.rawMessage).toMatch(/produce failed/);
    expect((await client.unaryEcho({ message: "accepted again" })).message).toBe("accepted again");
  });

  test("kafka.unreachable.unavailable", async () => {
    const doomed = await startBroker({ port: 0 });
    // Few retries, so the call fails well before its deadline.
    const kafka = createKafka({ servers: [doomed.bootstrap] }, "north-unreachable");
    // Give up on the vanished broker after a second (the client's produce retry maximum),
    // well before the call's own deadline.
    Object.assign(kafka, { wire: { ...kafka.wire, produceRetryMaxMs: 1_000 } });
    const { north: cut, client } = await startTestNorth(
      doomed.bootstrap,
      exampleNorthConfig(),
      kafka,
    );
    try {
      await doomed.close();
      const error = await failure(
        client.unaryEcho({ message: "nobody home" }, { timeoutMs: 20_000 }),
      );
      expect(error?.code).toBe(Code.Unavailable);
    } finally {
      await cut.close(0);
    }
  });
});
