/**
 * The embedded broker as a bench process, with the bench's topics created up front at the
 * wanted partition count; prints `{ready, bootstrap}`.
 */
import { startBroker } from "../../src/broker/broker.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { processStats } from "../lib/process-stats.ts";

const args = parseArgs();
const partitions = numberArg(args, "partitions", 3);
const topics = stringArg(args, "topics").split(",").filter(Boolean);
// No initial rebalance delay: group joins (gateway readiness) are part of what is measured.
const broker = await startBroker({
  port: 0,
  defaultPartitions: partitions,
  initialRebalanceDelayMs: 0,
});
for (const topic of topics) broker.createTopic(topic, partitions);

serveCommands(
  (command) => {
    if (command.cmd === "stats") return processStats();
    throw new Error(`unknown command ${command.cmd}`);
  },
  () => broker.close(),
);
emitReady({ bootstrap: broker.bootstrap });
