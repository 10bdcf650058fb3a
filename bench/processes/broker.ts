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
// The broker keeps its logs in memory: unbounded, its heap grew with every record of the run
// (RSS 1.4 GB after 80 s of unary 100 B at c=256). Every consumer reads within
// milliseconds (the pending-call phase within 15 s), so records older than this go; RSS then
// levels off (about 1 GB at that load: the broker reuses the chunks retention empties,
// src/broker/log/batch-arena.ts). Measured without effect on the 100 B figures (c=256 rounds
// alike with 5 s, 30 s and no retention); at 10 KiB the first 30 s of a scenario are the
// broker's growth, when every stored page is a fresh one.
const retentionMs = numberArg(args, "retention-ms", 30_000);
// No initial rebalance delay: group joins (gateway readiness) are part of what is measured.
const broker = await startBroker({
  port: 0,
  defaultPartitions: partitions,
  initialRebalanceDelayMs: 0,
  ...(retentionMs > 0 ? { retentionMs } : {}),
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
