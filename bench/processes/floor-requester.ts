/**
 * The kafkajs floor's requester: plays the gRPC client and north at once with plain kafkajs.
 * Each call (bench/lib/floor-call.ts) produces request records keyed by a fresh correlation
 * id and waits on a reply-topic consumer for the echoes and the status tombstone. `run`
 * keeps `concurrency` such calls in flight, like the load generators do against the gateway.
 */
import { randomUUID } from "node:crypto";
import { CORRELATION_ID, STATUS } from "../../src/kafka/header-names.ts";
import { emitReady, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize } from "../lib/echo-payload.ts";
import {
  awaitFirstRoundTrip,
  createCorrelationIds,
  type FloorTransport,
  floorCall,
  type ReplyQueue,
} from "../lib/floor-call.ts";
import {
  createBatchingProducer,
  createFloorKafka,
  floorRequestHeaders,
  headerText,
} from "../lib/floor-records.ts";
import { processStats } from "../lib/process-stats.ts";
import { type LoadRunRequest, runClosedLoop } from "../lib/scenarios.ts";

const args = parseArgs();
const bootstrap = stringArg(args, "bootstrap");
const requestTopic = stringArg(args, "request-topic");
const replyTopic = stringArg(args, "reply-topic");

const kafka = createFloorKafka("bench-floor-requester", bootstrap);
const producer = await createBatchingProducer(kafka, 1);
const waiting = new Map<string, ReplyQueue>();
const consumer = kafka.consumer({
  groupId: `bench-floor-requester-${randomUUID()}`,
  maxWaitTimeInMs: 200,
  minBytes: 1,
  maxBytesPerPartition: 4 * 1024 * 1024,
});
await consumer.connect();
await consumer.subscribe({ topic: replyTopic, fromBeginning: false });
await consumer.run({
  eachBatch: async ({ batch }) => {
    for (const message of batch.messages) {
      const id = headerText(message.headers, CORRELATION_ID);
      const queue = id === undefined ? undefined : waiting.get(id);
      queue?.push({ value: message.value, status: headerText(message.headers, STATUS) });
    }
  },
});

/** kafkajs wants Buffers; the payload already is one (no copy then). */
function asBuffer(value: Uint8Array | null): Buffer | null {
  if (value === null || Buffer.isBuffer(value)) return value;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

const transport: FloorTransport = {
  register(id, queue) {
    waiting.set(id, queue);
    return () => waiting.delete(id);
  },
  send(method, id, values) {
    const headers = floorRequestHeaders(method, replyTopic, id);
    return producer.send(
      requestTopic,
      values.map((value) => ({ key: id, value: asBuffer(value), headers })),
    );
  },
};
const correlationIdFor = createCorrelationIds(replyTopic);

await awaitFirstRoundTrip((probe, payload) =>
  floorCall(transport, correlationIdFor, probe, payload),
);

serveCommands(
  (command) => {
    if (command.cmd === "stats") return processStats();
    if (command.cmd !== "run") throw new Error(`unknown command ${command.cmd}`);
    const request = command.request as LoadRunRequest;
    const payload = Buffer.from(echoRequestBytes(echoTextOfSize(request.scenario.payloadBytes)));
    return runClosedLoop(request, () =>
      floorCall(transport, correlationIdFor, request.scenario, payload),
    );
  },
  async () => {
    await consumer.disconnect().catch(() => {});
    await producer.close();
  },
);
emitReady();
