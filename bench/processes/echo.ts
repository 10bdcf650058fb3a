/**
 * The echo upstream as a bench process: prints `{ready, port}`, answers `stats` with the
 * calls it received per method (the harness compares them with the calls the load
 * generator saw succeed) and its own CPU and memory.
 */
import { startEchoServer } from "../../src/upstream/echo-server.ts";
import { emitReady, numberArg, parseArgs, serveCommands } from "../lib/child-channel.ts";
import { processStats, startRssSampler } from "../lib/process-stats.ts";

const args = parseArgs();
// The gateway's own HTTP/2 session by default (the upstream's CPU is the gateway's loss on
// 2 cores: bench/README.md); `--http2 node` (or BENCH_ECHO_HTTP2=node in the harness's
// environment) serves with the runtime's server instead.
const echo = await startEchoServer({
  host: "127.0.0.1",
  port: numberArg(args, "port", 0),
  http2: (args.get("http2") ?? process.env.BENCH_ECHO_HTTP2) === "node" ? "node" : "own",
  // The log of every request is for tests; the harness reads the per-method counters.
  recordRequests: false,
});
startRssSampler();

serveCommands(
  (command) => {
    switch (command.cmd) {
      case "stats":
        return {
          calls: Object.fromEntries(echo.calls),
          ...processStats({ gc: command.gc === true }),
        };
      default:
        throw new Error(`unknown command ${command.cmd}`);
    }
  },
  async () => {
    await echo.close();
  },
);
emitReady({ port: echo.port });
