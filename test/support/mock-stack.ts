/**
 * The example deployment on librdkafka's mock cluster instead of the embedded broker: the
 * gateway (north + west, configured like Zilla's grpc.kafka.proxy example), the echo
 * upstream, and a mock cluster with the example's topics, for scenarios that check the
 * gateway against a Kafka it was not written with.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { type Gateway, startGateway } from "../../src/gateway.ts";
import { createLogger, type Logger } from "../../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { defaultChangelogTopic } from "../../src/west/changelog-topic.ts";
import { exampleConfig, replyTopic, requestTopic } from "./example-config.ts";
import { type MockKafka, startMockKafka } from "./mockkafka.ts";

export interface MockStackOptions {
  /** Brokers of the mock cluster (default 3). */
  brokers?: number;
  /** Partitions of the request and reply topics (default 3). */
  partitions?: number;
  /**
   * The broker that leads each partition of the request and reply topics at start (default:
   * partition p on broker p mod N + 1). The mock would pick leaders at random, and its
   * ListOffsets v4+ answer is garbled when it names two partitions led by one broker (see
   * docs/testing.md): one partition per broker keeps the gateway's ListOffsets readable.
   */
  leaderOf?: (topic: string, partition: number) => number;
  /** Changes to the example config before the gateway starts. */
  config?: (config: GatewayConfig) => void;
  /** Where the gateway logs (default: kept in `logs`, and printed when GATEWAY_TEST_LOG is set). */
  logger?: Logger;
}

/** One parsed log line: `msg` and the fields that came with it. */
export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface MockStack {
  mock: MockKafka;
  echo: EchoServer;
  gateway: Gateway;
  config: GatewayConfig;
  /** http://127.0.0.1:PORT of north's listener. */
  northUrl: string;
  /** A Connect gRPC client for the echo service through north. */
  client: Client<typeof Echo>;
  /** The gateway's log lines at debug level (unless `logger` was given). */
  logs: LogLine[];
  close(): Promise<void>;
}

/** Starts the mock cluster, the echo upstream and the gateway; `close()` stops all three. */
export async function startMockStack(opts: MockStackOptions = {}): Promise<MockStack> {
  const logs: LogLine[] = [];
  const logger =
    opts.logger ??
    createLogger("debug", (line) => {
      logs.push(JSON.parse(line) as LogLine);
      if (process.env.GATEWAY_TEST_LOG) process.stdout.write(`${line}\n`);
    });
  const partitions = opts.partitions ?? 3;
  // West's changelog is made here, not by west: the mock answers metadata for any topic by
  // creating it (with its own partition count), and leaders must be pinned one per broker.
  const changelogTopic = defaultChangelogTopic(
    "example",
    "west_kafka_grpc_remote_server",
    requestTopic,
  );
  const mock = await startMockKafka({
    brokers: opts.brokers ?? 3,
    topics: { [requestTopic]: partitions, [replyTopic]: partitions, [changelogTopic]: partitions },
  });
  let echo: EchoServer | undefined;
  try {
    const brokers = opts.brokers ?? 3;
    for (const topic of [requestTopic, replyTopic, changelogTopic]) {
      for (let p = 0; p < partitions; p++) {
        await mock.leader(topic, p, opts.leaderOf?.(topic, p) ?? (p % brokers) + 1);
      }
    }
    echo = await startEchoServer();
    const config = exampleConfig(mock.bootstrap, echo.port);
    config.kafka.servers = mock.brokers; // the mock prints one comma-separated list
    opts.config?.(config);
    const gateway = await startGateway(config, { logger });
    const northUrl = `http://127.0.0.1:${gateway.north[0]?.ports[0] ?? 0}`;
    const started = echo;
    return {
      mock,
      echo: started,
      gateway,
      config,
      northUrl,
      client: createClient(Echo, createGrpcTransport({ baseUrl: northUrl })),
      logs,
      async close() {
        await gateway.close(1_000);
        await started.close();
        await mock.close();
      },
    };
  } catch (err) {
    await echo?.close();
    await mock.close();
    throw err;
  }
}

/** What a unary load saw: calls answered with their own text, and every other outcome. */
export interface LoadResult {
  answered: number;
  failures: string[];
  /** The texts sent, in the order their calls started. */
  sent: string[];
}

export interface UnaryLoad {
  /** Resolves once `n` calls in all were answered; rejects at the first failed call. */
  reached(n: number): Promise<void>;
  /** Starts no more calls and resolves once those in flight are done. */
  stop(): Promise<LoadResult>;
}

/**
 * Keeps `workers` unary calls in flight through `client` (each with its own text, tagged
 * `tag`) until `stop()`; `callTimeoutMs` bounds each call (default 20 s).
 */
export function startUnaryLoad(
  client: Client<typeof Echo>,
  tag: string,
  workers = 8,
  callTimeoutMs = 20_000,
): UnaryLoad {
  const result: LoadResult = { answered: 0, failures: [], sent: [] };
  let stopped = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const worker = async () => {
    while (!stopped) {
      const message = `${tag}-${result.sent.length}`;
      result.sent.push(message);
      try {
        const reply = await client.unaryEcho({ message }, { timeoutMs: callTimeoutMs });
        if (reply.message === message) result.answered++;
        else result.failures.push(`${message}: answered "${reply.message}"`);
      } catch (err) {
        result.failures.push(`${message}: ${err instanceof Error ? err.message : String(err)}`);
      }
      wake();
    }
  };
  const running = Promise.all(Array.from({ length: workers }, worker));
  return {
    reached(n) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (result.failures.length > 0) {
            waiters.delete(check);
            reject(new Error(`a call failed under load: ${result.failures[0]}`));
          } else if (result.answered >= n) {
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      stopped = true;
      await running;
      return result;
    },
  };
}
