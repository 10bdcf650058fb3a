/**
 * West alone as a process, for crash scenarios (west-crash.test.ts): the harness's west
 * config against `--bootstrap`, calling the upstream at `--upstream host:port`, with the
 * harness's short group timings. Prints `{"msg":"west ready"}` once it has its assignment
 * (and has restored its changelog); a test then kills it with SIGKILL like a crashed host.
 *
 *   bun test/west/west-child.ts --bootstrap 127.0.0.1:9092 --upstream 127.0.0.1:50051
 *     [--store kafka|memory] [--store-max-entries N]
 */
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { createLogger, silentLogger } from "../../src/ops/logger.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { startWest } from "../../src/west/remote-server.ts";
import { fastTuning, namespace, westConfig } from "./west-harness.ts";

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

const bootstrap = arg("bootstrap");
const upstream = arg("upstream");
if (!bootstrap || !upstream) {
  process.stderr.write("usage: west-child.ts --bootstrap HOST:PORT --upstream HOST:PORT\n");
  process.exit(2);
}
const store = arg("store") === "memory" ? "memory" : "kafka";

const west = await startWest({
  config: westConfig(upstream, (c) => {
    c.options.idempotencyStore = store;
  }),
  namespace,
  kafka: createKafka({ servers: bootstrap.split(",") }, "west-child"),
  registry: await loadServiceRegistry(),
  logger: process.env.GATEWAY_TEST_LOG ? createLogger("debug") : silentLogger,
  // A killed member leaves the group only by its session timing out: keep that short.
  tuning: {
    ...fastTuning,
    sessionTimeoutMs: 3_000,
    // West's bound of ended calls kept in memory (100,000 by default), made small to pass it.
    ...(arg("store-max-entries") ? { storeMaxEntries: Number(arg("store-max-entries")) } : {}),
  },
});
process.stdout.write(`${JSON.stringify({ msg: "west ready", groupId: west.groupId })}\n`);
process.on("SIGTERM", () => {
  void west.close().finally(() => process.exit(0));
});
