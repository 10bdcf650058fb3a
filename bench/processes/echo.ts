/**
 * The echo upstream as a bench process: prints `{ready, port}`, answers `stats` with the
 * calls it received per method (the harness compares them with the calls the load
 * generator saw succeed) and its own CPU and memory.
 */
import { startEchoServer } from "../../src/upstream/echo-server.ts";
import { emitReady, numberArg, parseArgs, serveCommands } from "../lib/child-channel.ts";
import { processStats, startRssSampler } from "../lib/process-stats.ts";

const args = parseArgs();
const echo = await startEchoServer({ host: "127.0.0.1", port: numberArg(args, "port", 0) });
startRssSampler();

// The server keeps a log of every request for tests; a benchmark makes millions of calls,
// so the log is dropped regularly (the per-method counters are what the harness reads).
const trim = setInterval(() => {
  echo.requests.length = 0;
}, 500);

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
    clearInterval(trim);
    await echo.close();
  },
);
emitReady({ port: echo.port });
