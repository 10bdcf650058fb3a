/**
 * fetch.1000.clients: 1,000 concurrent fetch calls on one topic all get every record, while
 * the gateway reads the topic once (one shared reader: fetch requests and fetched bytes do
 * not grow with the number of calls). The clients run in a child process (fetch-clients.mjs)
 * so that this process's RSS is the gateway's (plus the embedded broker's small topic).
 * Prints RSS and the gateway's fetch request rate.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type FetchHarness, recordValue, startFetchHarness } from "./fetch-harness.ts";

const clients = 1_000;
const connections = 10;
const partitions = 3;
const perPartition = 20;

let harness: FetchHarness;
let child: ChildProcess | undefined;

beforeAll(async () => {
  harness = await startFetchHarness();
});

afterAll(async () => {
  child?.stdin?.end();
  child?.kill();
  await harness?.close();
});

function records(from: number, to: number) {
  const out: Array<{ partition: number; value: Buffer }> = [];
  for (let i = from; i < to; i++) {
    for (let p = 0; p < partitions; p++)
      out.push({ partition: p, value: recordValue(`p${p}-${i}`) });
  }
  return out;
}

/** Heap bytes still in use after a full collection (what the open calls really hold). */
function liveHeap(): number {
  // Exposing gc at run time avoids needing a flag on the test runner.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

interface Reached {
  reached: number;
  complete: number;
  rssBytes: number;
}

test("fetch.1000.clients", { timeout: 180_000 }, async () => {
  const topic = "fetch-1000";
  harness.createTopic(topic, partitions);
  await harness.produce(topic, records(0, perPartition / 2));
  const heapBefore = liveHeap();
  const rssBefore = process.memoryUsage().rss;
  const statsBefore = harness.capability.stats();
  const script = fileURLToPath(new URL("./fetch-clients.mjs", import.meta.url));
  const started = Date.now();
  const proc = spawn(
    process.execPath,
    [script, harness.url, topic, String(clients), String(connections), String(partitions)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  child = proc;
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })[
    Symbol.asyncIterator
  ]();
  const reach = async (count: number): Promise<Reached> => {
    proc.stdin?.write(`${count}\n`);
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`clients did not reach ${count} records`)), 120_000),
    );
    const line = await Promise.race([lines.next(), timeout]);
    if (line.done) throw new Error("the client process exited");
    return JSON.parse(line.value) as Reached;
  };

  const first = await reach(perPartition / 2);
  expect(first.complete).toBe(clients);
  const calls = harness.capability.stats().topics.find((t) => t.topic === topic);
  expect(calls?.subscriptions).toBe(clients);
  // Records produced while every call waits at the live edge.
  await harness.produce(topic, records(perPartition / 2, perPartition));
  const second = await reach(perPartition);
  const elapsedMs = Date.now() - started;
  const rss = process.memoryUsage().rss;
  const heap = liveHeap();
  const stats = harness.capability.stats();

  // Every call got every record of every partition, in order.
  expect(second.complete).toBe(clients);
  // One shared reader: nobody caught up on their own, and the fetches and fetched bytes
  // are a single reader's (1,000 independent readers would need at least 1,000 fetches).
  expect(stats.catchUpReadersStarted).toBe(0);
  const fetches = stats.fetchRequests - statsBefore.fetchRequests;
  expect(fetches).toBeLessThan(100);
  const topicBytes = perPartition * partitions * recordValue("p0-00").length;
  expect(stats.fetchResponseBytes).toBeLessThan(topicBytes * 20 + 100_000);

  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `fetch.1000.clients: ${clients} calls × ${perPartition * partitions} records in ${elapsedMs} ms; ` +
      `gateway fetch requests ${fetches} (${((fetches * 1000) / elapsedMs).toFixed(2)}/s), ` +
      `fetch response bytes ${stats.fetchResponseBytes}; gateway+broker process RSS ` +
      `${mib(rssBefore)} before, ${mib(rss)} with ${clients} calls open; live heap after GC ` +
      `${mib(heapBefore)} before, ${mib(heap)} with the calls open; ` +
      `client process RSS ${mib(second.rssBytes)}`,
  );
});
