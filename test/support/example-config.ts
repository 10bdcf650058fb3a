/**
 * The config of Zilla's grpc.kafka.proxy example as a `GatewayConfig`: north maps every Echo
 * method to the request topic with replies on the reply topic, west calls the echo upstream.
 * Scenario tests (stack.ts, the north fixture) and the bench gateway process all build it here.
 */
import {
  defaultGrpcKafkaOptions,
  defaultKafkaGrpcOptions,
  type GatewayConfig,
  type NorthConfig,
  type WestConfig,
} from "../../src/config/types.ts";

export const requestTopic = "echo-requests";
export const replyTopic = "echo-responses";

/** The topics the example's routes use; the defaults are `requestTopic` and `replyTopic`. */
export interface ExampleTopics {
  requestTopic?: string;
  replyTopic?: string;
}

/** The example's north binding: every Echo method to the request topic, replies on the reply topic. */
export function exampleNorthConfig(topics: ExampleTopics = {}): NorthConfig {
  return {
    binding: "north_grpc_kafka_mapping",
    listeners: [{ host: "127.0.0.1", port: 0 }],
    services: ["grpc.examples.echo.Echo"],
    routes: [
      {
        when: [{ method: "grpc.examples.echo.Echo/*" }],
        with: {
          capability: "produce",
          topic: topics.requestTopic ?? requestTopic,
          acks: "leader_only",
          replyTo: topics.replyTopic ?? replyTopic,
        },
      },
    ],
    options: defaultGrpcKafkaOptions(),
  };
}

/** The example's west binding, calling the echo upstream at `echoPort`. */
export function exampleWestConfig(echoPort: number, topics: ExampleTopics = {}): WestConfig {
  return {
    binding: "west_kafka_grpc_remote_server",
    routes: [
      {
        when: [
          {
            topic: topics.requestTopic ?? requestTopic,
            replyTo: topics.replyTopic ?? replyTopic,
            method: "grpc.examples.echo.Echo/*",
          },
        ],
        with: { scheme: "http", authority: `127.0.0.1:${echoPort}` },
      },
    ],
    options: { ...defaultKafkaGrpcOptions(), acks: "leader_only" },
  };
}

/** The example's topology with the given broker and upstream (namespace "example" by default). */
export function exampleConfig(
  bootstrap: string,
  echoPort: number,
  options: ExampleTopics & { name?: string } = {},
): GatewayConfig {
  return {
    name: options.name ?? "example",
    kafka: { servers: [bootstrap] },
    north: [exampleNorthConfig(options)],
    west: [exampleWestConfig(echoPort, options)],
  };
}
