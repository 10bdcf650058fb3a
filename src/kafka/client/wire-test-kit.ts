/**
 * Helpers shared by the wire client's tests (not used by the gateway): settings for a test
 * broker, writing to a chosen partition, kcat (librdkafka) as an independent client, and
 * waiting for a condition.
 */
import { spawn } from "node:child_process";
import { vi } from "vitest";
import { ApiKey } from "../protocol/api-keys.ts";
import type { Lane } from "./connection-pool.ts";
import { KafkaCluster } from "./kafka-cluster.ts";
import type { WireSettings } from "./wire-connection.ts";

/** Writes `values` to `topic`-`partition` with `writer` (the key picks the partition: found by search). */
export async function writeTo(
  writer: KafkaCluster,
  topic: string,
  partition: number,
  values: readonly string[],
): Promise<void> {
  const partitions = await writer.partitions(topic);
  let key = "";
  for (let i = 0; ; i++) {
    key = `k${i}`;
    if (writer.choosePartition(topic, partitions, key) === partition) break;
  }
  const encoder = new TextEncoder();
  const records = values.map((v) => ({ key, value: encoder.encode(v), headers: [] }));
  await writer.produce(-1, 5_000, new Map([[topic, records]]));
}

/** Client settings for `bootstrap`, with timeouts generous enough for a loaded machine. */
export function testSettings(
  bootstrap: string,
  overrides: Partial<WireSettings> = {},
): WireSettings {
  return {
    servers: [bootstrap],
    clientId: "wire-test",
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 15_000,
    retryTimeoutMs: 15_000,
    ...overrides,
  };
}

/** Runs kcat with `args` (and `stdin`, if given); resolves with its stdout, rejects on failure. */
export function kcat(args: readonly string[], stdin?: string | Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("kcat", [...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
      else
        reject(
          new Error(`kcat ${args.join(" ")} exited ${code}: ${Buffer.concat(err).toString()}`),
        );
    });
    child.stdin.end(stdin ?? "");
  });
}

/** One record as kcat -J prints it. */
export interface KcatRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  /** Name, value, name, value, ... in record order. */
  headers?: string[];
}

/** Every record of `topic` (all partitions, from the beginning) as kcat reads them. */
export async function kcatRead(bootstrap: string, topic: string): Promise<KcatRecord[]> {
  const stdout = await kcat(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J"]);
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as KcatRecord);
}

/** kcat's flat header list as pairs. */
export function headerPairs(flat: readonly string[] | undefined): [string, string][] {
  const out: [string, string][] = [];
  const list = flat ?? [];
  for (let i = 0; i + 1 < list.length; i += 2) out.push([list[i] as string, list[i + 1] as string]);
  return out;
}

/** Resolves once `check` returns true; rejects after `timeoutMs` with `what`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 25 },
  );
}

/** Whether `cluster`'s `lane` connection to `node` has an `apiKey` request awaiting its answer. */
export async function requestIsOut(
  cluster: KafkaCluster,
  apiKey: number,
  node = 1,
  lane: Lane = "main",
): Promise<boolean> {
  const connection = await cluster.connection(node, lane);
  // The connection's own table of requests awaiting an answer (read-only here).
  const pending = (connection as unknown as { pending: Map<number, { apiKey: number }> }).pending;
  return [...pending.values()].some((request) => request.apiKey === apiKey);
}

/**
 * The codec id (attributes & 7) of every batch stored in `topic`-`partition`, read with raw
 * Fetches from offset 0 to the end: what proves a producer really compressed. It fetches
 * again from after the last whole batch until the high watermark, because a broker may
 * answer with fewer batches than are stored (librdkafka's mock cluster answers one at a time).
 */
export async function storedCodecs(
  bootstrap: string | readonly string[],
  topic: string,
  partition = 0,
): Promise<number[]> {
  const servers = typeof bootstrap === "string" ? [bootstrap] : [...bootstrap];
  const cluster = new KafkaCluster(testSettings(servers[0] as string, { servers }));
  try {
    await cluster.partitionsWithin(topic, Date.now() + 5_000);
    const connection = await cluster.connection(cluster.leaderOf(topic, partition), "fetch");
    const codecs: number[] = [];
    let offset = 0n;
    for (;;) {
      const r = await connection.request(ApiKey.Fetch, 4, (w) => {
        w.int32(-1)
          .int32(0)
          .int32(1)
          .int32(8 << 20)
          .int8(0);
        w.array([topic], (w, t) => {
          w.string(t).array([partition], (w, p) =>
            w
              .int32(p)
              .int64(offset)
              .int32(8 << 20),
          );
        });
      });
      r.int32(); // throttle
      r.int32(); // topics
      r.string();
      r.int32(); // partitions
      r.int32();
      const error = r.int16();
      if (error !== 0) throw new Error(`fetch of ${topic}-${partition} failed: ${error}`);
      const end = r.int64(); // high watermark
      r.int64();
      r.int32(); // aborted transactions (null)
      const bytes = r.nullableBytes() ?? new Uint8Array(0);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let next = offset;
      for (let at = 0; at + 61 <= bytes.length; at += 12 + view.getInt32(at + 8)) {
        if (at + 12 + view.getInt32(at + 8) > bytes.length) break; // a partial batch
        codecs.push(view.getInt16(at + 21) & 7);
        next = view.getBigInt64(at) + BigInt(view.getInt32(at + 23)) + 1n;
      }
      if (next >= end || next === offset) return codecs;
      offset = next;
    }
  } finally {
    cluster.close();
  }
}
