/**
 * What north keeps per pending call: the bench's split gateway (north here, west its child),
 * the echo upstream holding every call with its delay hook, and the bench's pending-call
 * client. Prints north's RSS and JS heap per pending call and, under Bun, the live objects
 * by type that grew, per call (`bun:jsc` heapStats after a full GC), next to the same for a
 * bare node:http2 server holding as many streams (bench/processes/stream-holder.ts).
 *
 *   npx bun bench/profile/pending-heap.ts [--calls 10000] [--top 30]
 */
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoTextOfSize } from "../lib/echo-payload.ts";
import type { GatewayStats } from "../lib/process-stats.ts";

const args = parseArgs();
const calls = Number(args.get("calls") ?? 10_000);
const top = Number(args.get("top") ?? 30);
const delayMs = 60_000;

const broker = spawnChild<{ bootstrap: string }>("broker", "processes/broker.ts", [
  "--partitions",
  "3",
  "--topics",
  "echo-requests,echo-responses",
  // As the bench's pending-call phase (its load default, 5 s, is shorter).
  "--retention-ms",
  "30000",
]);
const echo = spawnChild<{ port: number }>("echo", "processes/echo.ts", []);
const pending = spawnChild<object>("pending-client", "processes/pending-client.ts", []);
const { bootstrap } = await broker.ready;

/** Object types grown between two counts, per call, largest first. */
function grownTypes(before: Record<string, number>, after: Record<string, number>) {
  return Object.entries(after)
    .map(([type, n]) => [type, (n - (before[type] ?? 0)) / calls] as const)
    .filter(([, perCall]) => perCall >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
}

/** The same calls held by a bare HTTP/2 server: what the runtime's streams cost alone. */
async function holdAtStreamHolder() {
  const holder = spawnChild<{ port: number }>("stream-holder", "processes/stream-holder.ts", []);
  try {
    const { port } = await holder.ready;
    const idle = await holder.request<GatewayStats>("stats", { gc: true });
    const idleTypes = await holder.request<Record<string, number>>("heap-types");
    await pending.request(
      "open",
      { url: `http://127.0.0.1:${port}`, calls, message: "x", timeoutS: 60 },
      120_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const held = await holder.request<GatewayStats>("stats", { gc: true });
    const heldTypes = await holder.request<Record<string, number>>("heap-types");
    await pending.request("close", {}, 60_000);
    return {
      rssBytes: held.rssBytes - idle.rssBytes,
      heapBytes: held.heapUsedBytes - idle.heapUsedBytes,
      grown: grownTypes(idleTypes, heldTypes),
    };
  } finally {
    await holder.stop(1_500);
  }
}
const { port: echoPort } = await echo.ready;
await pending.ready;
const gateway = spawnChild<{ port: number }>("gateway", "processes/gateway.ts", [
  "--bootstrap",
  bootstrap,
  "--echo-port",
  String(echoPort),
  "--request-topic",
  "echo-requests",
  "--reply-topic",
  "echo-responses",
]);
try {
  const { port } = await gateway.ready;
  const idle = await gateway.request<GatewayStats>("stats", { gc: true });
  const idleTypes = await gateway.request<Record<string, number>>("heap-types");
  await pending.request(
    "open",
    {
      url: `http://127.0.0.1:${port}`,
      calls,
      message: echoTextOfSize(100, `delay:${delayMs}:`),
      timeoutS: delayMs / 1000 + 30,
    },
    120_000,
  );
  // West takes its share to the upstream meanwhile. North reads a burst at the pace Kafka
  // takes its records (docs/limits.md, the produce backlog): sample once it serves them all.
  const openedAt = Date.now();
  while (
    (await gateway.request<number>("north-calls")) < calls &&
    Date.now() - openedAt < delayMs / 3
  ) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const held = await gateway.request<GatewayStats>("stats", { gc: true });
  const heldTypes = await gateway.request<Record<string, number>>("heap-types");
  const status = await pending.request<{ responded: number; errors: number }>("status");
  const kib = (bytes: number) => `${(bytes / calls / 1024).toFixed(2)} KiB`;
  console.log(
    `${calls} pending calls (${status.responded} answered, ${status.errors} failed): north RSS ${kib(held.north.rssBytes - idle.north.rssBytes)} per call, JS heap ${kib(held.north.heapUsedBytes - idle.north.heapUsedBytes)}`,
  );
  console.log("live objects per pending call, by type:");
  for (const [type, perCall] of grownTypes(idleTypes, heldTypes))
    console.log(`  ${perCall.toFixed(2).padStart(7)}  ${type}`);
  await pending.request("close", {}, 60_000);
  const bare = await holdAtStreamHolder();
  console.log(
    `bare node:http2 server, ${calls} streams: RSS ${kib(bare.rssBytes)} per stream, JS heap ${kib(bare.heapBytes)}`,
  );
  for (const [type, perCall] of bare.grown)
    console.log(`  ${perCall.toFixed(2).padStart(7)}  ${type}`);
} finally {
  await Promise.all([gateway.stop(1_500), echo.stop(1_500), pending.stop(1_500)]);
  await broker.stop(2_000);
}
process.exit(0);
