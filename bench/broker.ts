/**
 * Embedded-broker benchmark with kafkajs on loopback: produce→consume latency (p50/p99,
 * one record at a time) and consume throughput (records/s, batched sends).
 *
 *   npx bun bench/broker.ts [--records 200000] [--batch 500] [--value-bytes 100]
 *                           [--samples 1000] [--in-flight 4] [--child | --bootstrap H:P]
 *
 * `--child` runs the broker in its own process (src/broker/cli.ts under Bun), so broker
 * and clients use separate cores; `--bootstrap` uses a broker that is already running; by
 * default it runs in this process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { Kafka, logLevel } from "kafkajs";
import { startBroker } from "../src/broker/broker.ts";

interface BenchOptions {
  records: number;
  batch: number;
  valueBytes: number;
  samples: number;
  inFlight: number;
  child: boolean;
  bootstrap?: string;
}

function parseArgs(args: readonly string[]): BenchOptions {
  const options: BenchOptions = {
    records: 200_000,
    batch: 500,
    valueBytes: 100,
    samples: 1000,
    inFlight: 4,
    child: false,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const number = (): number => {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer`);
      return n;
    };
    if (flag === "--records") options.records = number();
    else if (flag === "--batch") options.batch = number();
    else if (flag === "--value-bytes") options.valueBytes = number();
    else if (flag === "--samples") options.samples = number();
    else if (flag === "--in-flight") options.inFlight = number();
    else if (flag === "--child") options.child = true;
    else if (flag === "--bootstrap") options.bootstrap = args[++i];
    else throw new Error(`unknown argument ${flag}`);
  }
  return options;
}

interface RunningBroker {
  bootstrap: string;
  where: string;
  stop(): Promise<void>;
}

async function startInProcess(): Promise<RunningBroker> {
  const broker = await startBroker({ port: 0, retentionBytes: 256 * 1024 * 1024 });
  return { bootstrap: broker.bootstrap, where: "in-process", stop: () => broker.close() };
}

/** Starts the CLI broker under Bun and waits for its "listening" line. */
function startChild(): Promise<RunningBroker> {
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  const [command, args] = isBun
    ? [process.execPath, ["src/broker/cli.ts", "--port", "0"]]
    : ["npx", ["bun", "src/broker/cli.ts", "--port", "0"]];
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.once("exit", (code) => reject(new Error(`broker exited with ${code}`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /broker listening on (\S+)/.exec(out);
      if (match?.[1] === undefined) return;
      child.removeAllListeners("exit");
      resolve({
        bootstrap: match[1],
        where: "child process",
        stop: () =>
          new Promise<void>((done) => {
            child.once("exit", () => done());
            child.kill("SIGTERM");
          }),
      });
    });
  });
}

function percentile(sorted: readonly number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return sorted[index] ?? Number.NaN;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const external = options.bootstrap;
  const broker =
    external !== undefined
      ? { bootstrap: external, where: external, stop: async () => {} }
      : options.child
        ? await startChild()
        : await startInProcess();
  // Fresh topics and groups per run, so runs against a long-lived broker do not mix.
  const runId = Date.now().toString(36);
  const kafka = new Kafka({
    clientId: "broker-bench",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: `bench-latency-${runId}`, numPartitions: 1 },
      { topic: `bench-throughput-${runId}`, numPartitions: 1 },
    ],
  });
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();

  // Latency: one record at a time, the next sent once the previous one was consumed.
  const latencyConsumer = kafka.consumer({
    groupId: `bench-latency-${runId}`,
    maxWaitTimeInMs: 5000,
  });
  await latencyConsumer.connect();
  await latencyConsumer.subscribe({ topic: `bench-latency-${runId}`, fromBeginning: true });
  let onDelivered: (() => void) | undefined;
  await latencyConsumer.run({
    eachMessage: async () => {
      onDelivered?.();
    },
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const latencies: number[] = [];
  for (let i = 0; i < options.samples; i++) {
    const delivered = new Promise<void>((resolve) => {
      onDelivered = resolve;
    });
    const sentAt = performance.now();
    await producer.send({
      topic: `bench-latency-${runId}`,
      acks: 1,
      messages: [{ value: `${i}` }],
    });
    await delivered;
    latencies.push(performance.now() - sentAt);
  }
  await latencyConsumer.disconnect();
  latencies.sort((a, b) => a - b);

  // Throughput: batched sends with a few in flight, one consumer reading with eachBatch.
  const value = Buffer.alloc(options.valueBytes, "x");
  const messages = Array.from({ length: options.batch }, () => ({ value }));
  const throughputConsumer = kafka.consumer({
    groupId: `bench-throughput-${runId}`,
    maxWaitTimeInMs: 100,
    maxBytes: 16 * 1024 * 1024,
    maxBytesPerPartition: 8 * 1024 * 1024,
  });
  await throughputConsumer.connect();
  await throughputConsumer.subscribe({ topic: `bench-throughput-${runId}`, fromBeginning: true });
  let consumed = 0;
  let firstConsumedAt = 0;
  let lastConsumedAt = 0;
  const allConsumed = new Promise<void>((resolve) => {
    throughputConsumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (consumed === 0) firstConsumedAt = performance.now();
        consumed += batch.messages.length;
        lastConsumedAt = performance.now();
        if (consumed >= options.records) resolve();
      },
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const sends = Math.ceil(options.records / options.batch);
  const produceStart = performance.now();
  let nextSend = 0;
  const sender = async (): Promise<void> => {
    while (nextSend < sends) {
      nextSend++;
      await producer.send({ topic: `bench-throughput-${runId}`, acks: 1, messages });
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, sender));
  const produceEnd = performance.now();
  await allConsumed;
  await throughputConsumer.disconnect();
  await producer.disconnect();
  await broker.stop();

  const produced = sends * options.batch;
  const endToEndS = (lastConsumedAt - produceStart) / 1000;
  const rows: [string, string][] = [
    ["broker", broker.where],
    ["runtime", typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "node"],
    ["latency samples", String(latencies.length)],
    ["latency p50 (ms)", percentile(latencies, 50).toFixed(2)],
    ["latency p99 (ms)", percentile(latencies, 99).toFixed(2)],
    ["records", `${produced} × ${options.valueBytes} B, ${options.batch} per send`],
    [
      "produced (records/s)",
      Math.round(produced / ((produceEnd - produceStart) / 1000)).toString(),
    ],
    ["consumed (records/s)", Math.round(consumed / endToEndS).toString()],
    [
      "consumer only (records/s)",
      Math.round(consumed / ((lastConsumedAt - firstConsumedAt) / 1000)).toString(),
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
