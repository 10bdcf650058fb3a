// biome-ignore-all lint/style/useTemplate: "$" + "{...}" spells Zilla's expression, not a JavaScript template
/**
 * A guarded fetch route through north: the filter's key is the caller's identity
 * (`${guarded['jwt0'].identity}`), so each caller streams only its own records from a shared
 * topic; a caller without a token is refused; and the stream ends UNAUTHENTICATED when the
 * token expires.
 */
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FanoutService } from "../../gen/example/fanout_pb.ts";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import { defaultGrpcKafkaOptions, type NorthConfig } from "../../src/config/types.ts";
import type { North } from "../../src/north/north-server.ts";
import { recordValue } from "../fetch/fetch-harness.ts";
import { audience, createTestIssuer, issuer, type TestIssuer } from "../support/tokens.ts";
import { startTestNorth } from "./north-fixture.ts";

const topic = "fanout-guarded";
let broker: Broker;
let north: North;
let url: string;
let keys: TestIssuer;

beforeAll(async () => {
  keys = await createTestIssuer("ES256", "fetch-1");
  broker = await startBroker({ port: 0 });
  broker.createTopic(topic, 2);
  const config: NorthConfig = {
    binding: "north_fetch",
    listeners: [
      {
        host: "127.0.0.1",
        port: 0,
        authorization: {
          guard: "jwt0",
          credentials: { headers: { authorization: "Bearer {credentials}" } },
        },
      },
    ],
    services: ["example.FanoutService"],
    guards: {
      jwt0: {
        type: "jwt",
        name: "jwt0",
        issuer,
        audience,
        roles: "scope",
        identity: "sub",
        attributes: {},
        keys: [keys.jwk],
      },
    },
    routes: [
      {
        when: [{ method: "example.FanoutService/*" }],
        guarded: [{ guard: "jwt0", roles: [] }],
        with: {
          capability: "fetch",
          topic,
          filters: [{ key: "$" + "{guarded['jwt0'].identity}" }],
        },
      },
    ],
    options: defaultGrpcKafkaOptions(),
  };
  ({ north, url } = await startTestNorth(broker.bootstrap, config));
  const kafka = new Kafka({
    clientId: "fetch-guards",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic,
    messages: [
      { key: "alice", value: recordValue("alice 1") },
      { key: "bob", value: recordValue("bob 1") },
      { key: "alice", value: recordValue("alice 2") },
    ],
  });
  await producer.disconnect();
}, 60_000);

afterAll(async () => {
  await north?.close(500);
  await broker?.close();
});

const client = () => createClient(FanoutService, createGrpcTransport({ baseUrl: url }));

/** Reads `count` messages of a caller's stream, then cancels it. */
async function firstMessages(token: string, count: number): Promise<string[]> {
  const controller = new AbortController();
  const out: string[] = [];
  try {
    for await (const m of client().fanoutServerStream(create(EmptySchema), {
      headers: { authorization: `Bearer ${token}` },
      signal: controller.signal,
    })) {
      out.push(m.message);
      if (out.length === count) controller.abort();
    }
  } catch (error) {
    if (ConnectError.from(error).code !== Code.Canceled) throw error;
  }
  return out.sort();
}

describe("guarded fetch", () => {
  test("each.caller.streams.its.own.records", async () => {
    expect(await firstMessages(await keys.mint({ sub: "alice" }), 2)).toEqual([
      "alice 1",
      "alice 2",
    ]);
    expect(await firstMessages(await keys.mint({ sub: "bob" }), 1)).toEqual(["bob 1"]);
  });

  test("no.token.is.refused", async () => {
    const stream = client().fanoutServerStream(create(EmptySchema));
    const error = await (async () => {
      for await (const _ of stream) {
        // nothing is expected
      }
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unauthenticated);
  });

  test("the.stream.ends.when.the.token.expires", async () => {
    const token = await keys.mint({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 2 });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const m of client().fanoutServerStream(create(EmptySchema), {
        headers: { authorization: `Bearer ${token}` },
      })) {
        seen.push(m.message);
      }
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(seen.sort()).toEqual(["alice 1", "alice 2"]);
    expect(error?.code).toBe(Code.Unauthenticated);
    expect(error?.rawMessage).toMatch(/credentials expired during the call/);
  });
});
