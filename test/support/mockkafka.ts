/**
 * librdkafka's mock cluster as a child process: an independent Kafka implementation for
 * scenario tests, with fault commands (a broker down, late answers, queued error codes, a
 * leader move). The binary is built by scripts/build-mockkafka.sh from the team's
 * mockkafka.c; its quirks are listed in docs/testing.md.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { repoRoot } from "./gateway-process.ts";

export interface MockKafkaOptions {
  /** Brokers in the cluster, ids 1..brokers (default 3). */
  brokers?: number;
  /** Topics created at start, name → partitions (replication min(brokers, 3)). */
  topics?: Record<string, number>;
  /** How long start waits for the bootstrap list (default 30 s). */
  startTimeoutMs?: number;
  /** How long one command waits for its answer (default 10 s). */
  commandTimeoutMs?: number;
}

export interface MockKafka {
  /** Comma-separated host:port of every broker, as printed by the mock. */
  readonly bootstrap: string;
  /** The brokers' host:port, broker id i at index i − 1. */
  readonly brokers: string[];
  /** Broker `broker` refuses connections (and drops the ones it has). */
  down(broker: number): Promise<void>;
  /** Broker `broker` accepts connections again. */
  up(broker: number): Promise<void>;
  /** Broker `broker` answers every request `ms` milliseconds late (0 undoes it). */
  rtt(broker: number, ms: number): Promise<void>;
  /** The next `count` requests of API `apiKey` are answered with Kafka error `code`. */
  errors(apiKey: number, code: number, count: number): Promise<void>;
  /** Drops the errors still queued for API `apiKey`. */
  clear(apiKey: number): Promise<void>;
  /** Moves the leader of `topic`'s partition `partition` to broker `broker`. */
  leader(topic: string, partition: number, broker: number): Promise<void>;
  /** Everything the mock wrote to stderr (its complaints), for failure messages. */
  stderr(): string;
  /** Stops the cluster (quit, then SIGKILL if it lingers); safe to call twice. */
  close(): Promise<void>;
}

/**
 * Builds the mock if needed and returns the binary's path; throws with the build's reason.
 * `env` adds variables for the build script (MOCKKAFKA_SOURCE names the source).
 */
export async function buildMockKafka(env: Record<string, string> = {}): Promise<string> {
  const script = join(repoRoot, "scripts", "build-mockkafka.sh");
  const options = { cwd: repoRoot, timeout: 120_000, env: { ...process.env, ...env } };
  return await new Promise((resolve, reject) => {
    execFile("bash", [script], options, (error, stdout, stderr) => {
      if (error) {
        reject(
          new Error(
            `librdkafka's mock cluster could not be built (scripts/build-mockkafka.sh): ${String(stderr).trim() || error.message}`,
          ),
        );
      } else resolve(String(stdout).trim());
    });
  });
}

/** Starts a mock cluster with `options.brokers` brokers and the given topics. */
export async function startMockKafka(options: MockKafkaOptions = {}): Promise<MockKafka> {
  const brokerCount = options.brokers ?? 3;
  const topics = Object.entries(options.topics ?? {});
  checkInteger("brokers", brokerCount, 1);
  for (const [name, partitions] of topics) {
    checkTopic(name);
    checkInteger(`partitions of ${name}`, partitions, 1);
  }
  const binary = await buildMockKafka();
  const child = spawn(
    binary,
    [String(brokerCount), ...topics.map(([name, partitions]) => `${name}:${partitions}`)],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  return await connectMockKafka(child, brokerCount, options);
}

interface Pending {
  command: string;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** Timed out: its late answer is still read (and dropped) so that later ones line up. */
  abandoned?: boolean;
}

async function connectMockKafka(
  child: ChildProcess,
  brokerCount: number,
  options: MockKafkaOptions,
): Promise<MockKafka> {
  const commandTimeoutMs = options.commandTimeoutMs ?? 10_000;
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // Answers come in the order commands were written: one FIFO of waiting commands.
  const pending: Pending[] = [];
  let onBootstrap: ((line: string) => void) | undefined;
  let onBootstrapFail: ((err: Error) => void) | undefined;
  const failAll = (err: Error) => {
    onBootstrapFail?.(err);
    for (const p of pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  };
  let exitReason: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitReason = `mock cluster exited (code ${code}, signal ${signal})${stderr ? `: ${stderr.trim()}` : ""}`;
      failAll(new Error(exitReason));
      resolve();
    });
    child.once("error", (err) => {
      exitReason = `mock cluster failed to start: ${err.message}`;
      failAll(new Error(exitReason));
      resolve();
    });
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  lines.on("line", (line) => {
    if (onBootstrap) {
      const take = onBootstrap;
      onBootstrap = undefined;
      onBootstrapFail = undefined;
      take(line);
      return;
    }
    const p = pending.shift();
    if (!p || p.abandoned) return;
    clearTimeout(p.timer);
    const [name, result] = line.split(" ");
    if (name !== p.command.split(" ")[0]) {
      p.reject(new Error(`mock cluster answered "${line}" to "${p.command}"`));
    } else if (result !== "NO_ERROR") {
      p.reject(new Error(`mock cluster refused "${p.command}": ${result}`));
    } else p.resolve();
  });

  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const bootstrapLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`mock cluster printed no bootstrap list within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    onBootstrap = (line) => {
      clearTimeout(timer);
      resolve(line);
    };
    onBootstrapFail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
  }).catch(async (err: unknown) => {
    child.kill("SIGKILL");
    await exited;
    throw err;
  });
  const brokers = bootstrapLine.split(",");
  if (brokers.length !== brokerCount || brokers.some((b) => !/^[\w.-]+:\d+$/.test(b))) {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`mock cluster printed "${bootstrapLine}", not ${brokerCount} brokers`);
  }

  const send = (command: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (exitReason !== undefined) {
        reject(new Error(`"${command}": ${exitReason}`));
        return;
      }
      const entry: Pending = {
        command,
        resolve,
        reject,
        timer: setTimeout(() => {
          entry.abandoned = true;
          reject(
            new Error(`mock cluster gave no answer to "${command}" in ${commandTimeoutMs} ms`),
          );
        }, commandTimeoutMs),
      };
      pending.push(entry);
      child.stdin?.write(`${command}\n`);
    });
  const checkBroker = (broker: number) => checkInteger("broker", broker, 1, brokerCount);

  let closing: Promise<void> | undefined;
  return {
    bootstrap: bootstrapLine,
    brokers,
    down(broker) {
      checkBroker(broker);
      return send(`down ${broker}`);
    },
    up(broker) {
      checkBroker(broker);
      return send(`up ${broker}`);
    },
    rtt(broker, ms) {
      checkBroker(broker);
      checkInteger("rtt ms", ms, 0);
      return send(`rtt ${broker} ${ms}`);
    },
    errors(apiKey, code, count) {
      checkInteger("apiKey", apiKey, 0, 32767);
      checkInteger("error code", code, -1, 32767);
      checkInteger("count", count, 1);
      return send(`errors ${apiKey} ${code} ${count}`);
    },
    clear(apiKey) {
      checkInteger("apiKey", apiKey, 0, 32767);
      return send(`clear ${apiKey}`);
    },
    leader(topic, partition, broker) {
      checkTopic(topic);
      checkInteger("partition", partition, 0);
      checkBroker(broker);
      return send(`leader ${topic} ${partition} ${broker}`);
    },
    stderr: () => stderr,
    close() {
      closing ??= (async () => {
        if (exitReason !== undefined) return;
        child.stdin?.end("quit\n");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
        lines.close();
      })();
      return closing;
    },
  };
}

function checkInteger(what: string, value: number, min: number, max = 2 ** 31 - 1): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `mock cluster ${what} must be an integer in [${min}, ${max}], got ${value}`,
    );
  }
}

// The mock reads commands split on white space: a name with a space could not be sent.
function checkTopic(topic: string): void {
  if (!/^[\w.-]{1,249}$/.test(topic)) {
    throw new RangeError(`mock cluster topic names are [A-Za-z0-9._-]{1,249}, got "${topic}"`);
  }
}
