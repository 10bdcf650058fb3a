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
// (RSS 1.4 GB after 80 s of unary 100 B at c=256). Every consumer of the load scenarios reads
// within milliseconds, so records older than this go, and the broker then writes into the
// chunks retention empties (src/broker/log/batch-arena.ts) instead of fresh pages the kernel
// faults in and zeroes. The shorter the limit, the sooner that steady state follows a rise in
// load: with 30 s, at unary 10 KiB c=256, the broker still grew through every 5 s window
// (`bench/profile/split-cpu.ts --payload-bytes 10240 --concurrency 256 --retention-ms`:
// 73–92 µs of broker CPU per gateway call with 30 s against 55–59 with 5 s, and that growth
// fell on whichever side ran while it lasted). The 100 B figures were alike with 5 s, 30 s and
// no retention. The pending-call phase reads records up to 15 s old: the harness raises the
// limit for it with the `retention` command.
const retentionMs = numberArg(args, "retention-ms", 5_000);
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
    if (command.cmd === "retention") {
      const ms = Number(command.ms);
      broker.setRetentionMs(ms > 0 ? ms : undefined);
      return { retentionMs: ms > 0 ? ms : null };
    }
    throw new Error(`unknown command ${command.cmd}`);
  },
  () => broker.close(),
);
emitReady({ bootstrap: broker.bootstrap });
