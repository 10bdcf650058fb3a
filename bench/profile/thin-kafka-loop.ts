/**
 * kafka-loop.ts with the thin prototype client (thin-kafka.ts) instead of kafkajs: the
 * same records (request message + end marker, reply message + status tombstone, the record
 * contract's headers), the same batching, the same broker process; no consumer groups or
 * commits. The difference in CPU per call is what kafkajs costs the gateway.
 *
 *   npx bun bench/profile/thin-kafka-loop.ts [--concurrency 1,64] [--duration-ms 3000]
 */
import { randomUUID } from "node:crypto";
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import { replyEndHeaders, replyHeaders, requestHeaders } from "../../src/kafka/record-contract.ts";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize } from "../lib/echo-payload.ts";
import { measureClosedLoop } from "./closed-loop.ts";
import { startFetchLoop, ThinConnection, ThinProducer } from "./thin-kafka.ts";

const args = parseArgs();
const concurrencies = (args.get("concurrency") ?? "1,64").split(",").map(Number);
const durationMs = Number(args.get("duration-ms") ?? 3000);
const partitions = 3;
const requestTopic = "loop-requests";
const replyTopic = "loop-replies";
const names = defaultCorrelationHeaders;

const broker = spawnChild<{ bootstrap: string }>("broker", "processes/broker.ts", [
  "--partitions",
  String(partitions),
  "--topics",
  `${requestTopic},${replyTopic}`,
]);
const { bootstrap } = await broker.ready;
const [northProduce, westProduce, westFetch, northFetch] = await Promise.all(
  [0, 1, 2, 3].map(() => ThinConnection.open(bootstrap)),
);
const requests = new ThinProducer(northProduce as ThinConnection, partitions);
const replies = new ThinProducer(westProduce as ThinConnection, partitions);
const payload = echoRequestBytes(echoTextOfSize(100));
const waiting = new Map<string, () => void>();

const west = startFetchLoop(
  westFetch as ThinConnection,
  requestTopic,
  partitions,
  1000,
  (records) => {
    for (const record of records) {
      if (record.value !== null || record.key === null) continue;
      const id = record.key;
      void replies.send(replyTopic, { key: id, value: payload, headers: replyHeaders(names, id) });
      void replies.send(replyTopic, {
        key: id,
        value: null,
        headers: replyEndHeaders(names, id, 0),
      });
    }
  },
);
const north = startFetchLoop(
  northFetch as ThinConnection,
  replyTopic,
  partitions,
  200,
  (records) => {
    for (const record of records) {
      if (record.value !== null) continue;
      const id = record.headers.find(([n]) => n === names.correlationId)?.[1];
      if (id === undefined) continue;
      waiting.get(id)?.();
    }
  },
);

const route = { capability: "produce" as const, topic: requestTopic, replyTo: replyTopic };
function call(): Promise<void> {
  const id = `${randomUUID()}-46ae5cdb4b46cbb367cbad0bea36a56f`;
  return new Promise<void>((resolve) => {
    waiting.set(id, () => {
      waiting.delete(id);
      resolve();
    });
    const headers = requestHeaders({
      route,
      names,
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      correlationId: id,
      metadata: [],
    });
    void requests.send(requestTopic, { key: id, value: payload, headers });
    void requests.send(requestTopic, { key: id, value: null, headers });
  });
}

await measureClosedLoop(concurrencies, durationMs, call, broker);
west.stop();
north.stop();
await broker.stop(2_000);
process.exit(0);
