/**
 * The gateway under test as a bench process: the example topology (north produce route with
 * reply-to, west remote server calling the echo upstream) built like test/support/stack.ts's
 * exampleConfig, started with `startGateway`. Prints `{ready, port, readyInProcessMs}` once
 * north accepts calls; answers `stats` with its CPU time and RSS (after a GC when asked).
 */
import {
  defaultGrpcKafkaOptions,
  defaultKafkaGrpcOptions,
  type GatewayConfig,
} from "../../src/config/types.ts";
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { processStats, resetPeakRss, startRssSampler } from "../lib/process-stats.ts";

/** The example's topology against the given broker and echo upstream. */
function benchConfig(opts: {
  bootstrap: string;
  echoPort: number;
  requestTopic: string;
  replyTopic: string;
}): GatewayConfig {
  return {
    name: "bench",
    kafka: { servers: [opts.bootstrap] },
    north: [
      {
        binding: "north_grpc_kafka_mapping",
        listeners: [{ host: "127.0.0.1", port: 0 }],
        services: ["grpc.examples.echo.Echo"],
        routes: [
          {
            when: [{ method: "grpc.examples.echo.Echo/*" }],
            with: {
              capability: "produce",
              topic: opts.requestTopic,
              acks: "leader_only",
              replyTo: opts.replyTopic,
            },
          },
        ],
        options: defaultGrpcKafkaOptions(),
      },
    ],
    west: [
      {
        binding: "west_kafka_grpc_remote_server",
        routes: [
          {
            when: [
              {
                topic: opts.requestTopic,
                replyTo: opts.replyTopic,
                method: "grpc.examples.echo.Echo/*",
              },
            ],
            with: { scheme: "http", authority: `127.0.0.1:${opts.echoPort}` },
          },
        ],
        options: { ...defaultKafkaGrpcOptions(), acks: "leader_only" },
      },
    ],
  };
}

const args = parseArgs();
const config = benchConfig({
  bootstrap: stringArg(args, "bootstrap"),
  echoPort: numberArg(args, "echo-port"),
  requestTopic: stringArg(args, "request-topic"),
  replyTopic: stringArg(args, "reply-topic"),
});
// Logs go to stderr: stdout carries the bench protocol.
const logger = createLogger(args.get("log-level") === "debug" ? "debug" : "warn", (line) =>
  process.stderr.write(`${line}\n`),
);
const gateway = await startGateway(config, { logger });
// Time since the runtime started this process (the harness also measures spawn to ready).
const readyInProcessMs = performance.now();
startRssSampler();

serveCommands(
  (command) => {
    switch (command.cmd) {
      case "stats":
        return processStats({ gc: command.gc === true });
      case "reset-peak":
        resetPeakRss();
        return null;
      default:
        throw new Error(`unknown command ${command.cmd}`);
    }
  },
  () => gateway.close(1_000),
);
emitReady({ port: gateway.north[0]?.ports[0] ?? 0, readyInProcessMs });
