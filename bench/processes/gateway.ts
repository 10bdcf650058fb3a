/**
 * The gateway under test as a bench process: the example topology (north produce route with
 * reply-to, west remote server calling the echo upstream) from test/support/example-config.ts,
 * started with `startGateway`. Prints `{ready, port, readyInProcessMs}` once
 * north accepts calls; answers `stats` with its CPU time and RSS (after a GC when asked).
 */
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { exampleConfig } from "../../test/support/example-config.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { processStats, resetPeakRss, startRssSampler } from "../lib/process-stats.ts";

const args = parseArgs();
const config = exampleConfig(stringArg(args, "bootstrap"), numberArg(args, "echo-port"), {
  name: "bench",
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
