/**
 * Runs the embedded broker on its own: `broker --port 9092 --host 127.0.0.1 --partitions N`.
 * Stops cleanly on SIGINT/SIGTERM.
 */
import process from "node:process";
import { type BrokerOptions, startBroker } from "./broker.ts";

const USAGE =
  "usage: broker [--port 9092] [--host 127.0.0.1] [--partitions N] [--node-id N]\n" +
  "              [--retention-bytes N] [--retention-ms N] [--max-message-bytes N] [--help]";

const HELP = `${USAGE}

The embedded single-node Kafka-compatible broker, for development, tests and benchmarks.
Data lives in memory only and is lost when it stops; Ctrl-C or SIGTERM stops it (exit 0).

  --port N              listen port (default 9092; 0 = any free port)
  --host ADDRESS        listen address (default 127.0.0.1)
  --partitions N        partitions of an auto-created topic (default 1)
  --node-id N           the broker's node id (default 1)
  --retention-bytes N   per-partition size limit (default: none)
  --retention-ms N      per-record age limit (default: none)
  --max-message-bytes N largest record batch a Produce may write, as Kafka's
                        message.max.bytes (default: none; Kafka's is 1048588)
  -h, --help            this text`;

/** Parses the command line; throws with a message naming the bad flag. */
export function parseBrokerArgs(args: readonly string[]): BrokerOptions {
  const options: BrokerOptions = { port: 9092 };
  const integer = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < min) {
      throw new Error(`${flag} needs an integer of at least ${min}, got ${value ?? "nothing"}`);
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i] as string;
    const value = args[i + 1];
    switch (flag) {
      case "--port":
        options.port = integer(flag, value, 0);
        break;
      case "--host":
        if (value === undefined) throw new Error("--host needs an address");
        options.host = value;
        break;
      case "--partitions":
        options.defaultPartitions = integer(flag, value, 1);
        break;
      case "--node-id":
        options.nodeId = integer(flag, value, 0);
        break;
      case "--retention-bytes":
        options.retentionBytes = integer(flag, value, 1);
        break;
      case "--retention-ms":
        options.retentionMs = integer(flag, value, 1);
        break;
      case "--max-message-bytes":
        options.maxMessageBytes = integer(flag, value, 1);
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
    i++;
  }
  return options;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  let options: BrokerOptions;
  try {
    options = parseBrokerArgs(args);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const broker = await startBroker({
    ...options,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`broker listening on ${broker.bootstrap}\n`);
  const stop = (): void => {
    broker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`broker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
