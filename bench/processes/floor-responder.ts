/**
 * The floor's responder: a kafkajs consumer group on the request topic that answers each
 * call the way the echo upstream would (UnaryEcho and bidi: one echo per message;
 * ServerStreamingEcho: 10 echoes), and ends each call with a status-0 tombstone when the
 * request's end tombstone arrives. Replies of one fetched batch leave in one produce.
 */

import type { Message } from "kafkajs";
import { CORRELATION_ID, METHOD, REPLY_TO } from "../../src/kafka/header-names.ts";
import { emitReady, numberArg, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import {
  createBatchingProducer,
  createFloorKafka,
  floorReply,
  headerText,
} from "../lib/floor-records.ts";
import { processStats } from "../lib/process-stats.ts";
import { serverStreamReplies } from "../lib/scenarios.ts";

const args = parseArgs();
const bootstrap = stringArg(args, "bootstrap");
const requestTopic = stringArg(args, "request-topic");
const partitions = numberArg(args, "partitions", 1);

const kafka = createFloorKafka("bench-floor-responder", bootstrap);
const producer = await createBatchingProducer(kafka, 1);
const consumer = kafka.consumer({
  groupId: "bench-floor-responder",
  maxWaitTimeInMs: 200,
  minBytes: 1,
  maxBytesPerPartition: 4 * 1024 * 1024,
});
await consumer.connect();
await consumer.subscribe({ topic: requestTopic, fromBeginning: true });
const joined = new Promise<void>((resolve) =>
  consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
);
let answered = 0;
await consumer.run({
  partitionsConsumedConcurrently: partitions,
  eachBatch: async ({ batch }) => {
    const replies = new Map<string, Message[]>();
    for (const message of batch.messages) {
      const correlationId = headerText(message.headers, CORRELATION_ID);
      const replyTo = headerText(message.headers, REPLY_TO);
      if (correlationId === undefined || replyTo === undefined) continue;
      let out = replies.get(replyTo);
      if (!out) {
        out = [];
        replies.set(replyTo, out);
      }
      if (message.value === null) {
        out.push(floorReply(correlationId, null));
        answered++;
        continue;
      }
      const copies =
        headerText(message.headers, METHOD) === "ServerStreamingEcho" ? serverStreamReplies : 1;
      for (let i = 0; i < copies; i++) out.push(floorReply(correlationId, message.value));
    }
    await Promise.all([...replies].map(([topic, messages]) => producer.send(topic, messages)));
  },
});
await joined;

serveCommands(
  (command) => {
    if (command.cmd === "stats") return { answered, ...processStats() };
    throw new Error(`unknown command ${command.cmd}`);
  },
  async () => {
    await consumer.disconnect().catch(() => {});
    await producer.close();
  },
);
emitReady();
