/**
 * N north instances in one process, for the scale-out measurement (bench/lib/scale-out.ts):
 * each with its own port, Kafka connections and reply reader on the same reply topic, owning
 * either every reply partition (`--mode all`, how north read replies before reply affinity)
 * or a share handed out by their consumer group (`--mode group`). One process keeps eight
 * instances cheap; what is measured is how many reply records each one fetches, not CPU.
 * Prints `{ready, ports}`; `stats` answers the reply records fetched by all of them and
 * whether each reads only what it owns.
 */

import { createKafka } from "../../src/kafka/kafka-client.ts";
import { type North, startNorth } from "../../src/north/north-server.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";
import { exampleNorthConfig } from "../../test/support/example-config.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";

const args = parseArgs();
const count = numberArg(args, "count");
const mode = stringArg(args, "mode");
if (mode !== "all" && mode !== "group") throw new Error(`--mode wants all or group, got ${mode}`);
const bootstrap = stringArg(args, "bootstrap");
const topics = {
  requestTopic: stringArg(args, "request-topic"),
  replyTopic: stringArg(args, "reply-topic"),
};
const logger = createLogger("warn", (line) => process.stderr.write(`${line}\n`));
const registry = await loadServiceRegistry();

// Started together: a group of eight settles in one rebalance rather than eight.
const norths: North[] = await Promise.all(
  Array.from({ length: count }, (_, i) =>
    startNorth({
      config: exampleNorthConfig(topics),
      kafka: createKafka({ servers: [bootstrap] }, `bench-north-${i}`),
      registry,
      logger: logger.child({ instance: i }),
      replyOwnership: { partitions: mode, groupId: "zilla:bench-scale-replies" },
    }),
  ),
);

serveCommands(
  (command) => {
    if (command.cmd !== "stats") throw new Error(`unknown command ${command.cmd}`);
    const partitions = norths.map((n) => n.replyPartitions()[0]);
    return {
      recordsRead: norths.reduce((sum, n) => sum + n.replyRecordsRead(), 0),
      owned: partitions.map((p) => p?.owned.length ?? 0),
      read: partitions.map((p) => p?.read.length ?? 0),
      // Every partition owned once, and nothing read beyond it (partitions let go after a
      // rebalance are read for a short linger).
      settled:
        partitions.reduce((sum, p) => sum + (p?.owned.length ?? 0), 0) ===
          (partitions[0]?.count ?? 0) || mode === "all"
          ? partitions.every((p) => p && p.read.length === p.owned.length)
          : false,
    };
  },
  async () => {
    await Promise.all(norths.map((n) => n.close(500)));
  },
);
emitReady({ ports: norths.map((n) => n.ports[0] ?? 0) });
