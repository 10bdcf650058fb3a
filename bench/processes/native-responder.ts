/**
 * The native floor's responder: answers each call the way the echo upstream would (as the
 * kafkajs floor's responder does), on the gateway's own Kafka client as west uses it
 * (src/kafka/: the group consumer and the reply producer over src/kafka/client/), with no
 * gRPC: one echo per request message (ServerStreamingEcho: 10), a status-0 tombstone when
 * the request's end tombstone arrives. Replies queued in one turn leave in one produce.
 */
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import { startGroupConsumer } from "../../src/kafka/group-consumer.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import {
  type ContractRecord,
  parseRequestHeaders,
  replyEndHeaders,
  replyHeaders,
} from "../../src/kafka/record-contract.ts";
import { startReplyProducer } from "../../src/kafka/reply-producer.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { emitReady, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { processStats } from "../lib/process-stats.ts";
import { serverStreamReplies } from "../lib/scenarios.ts";

const args = parseArgs();
const bootstrap = stringArg(args, "bootstrap");
const requestTopic = stringArg(args, "request-topic");
const names = defaultCorrelationHeaders;

const logger = createLogger("warn", (line) => process.stderr.write(`${line}\n`));
const kafka = createKafka({ servers: [bootstrap] }, "bench-native-responder");
const replies = await startReplyProducer(kafka, { acks: "leader_only", logger });
let answered = 0;
const consumer = await startGroupConsumer(kafka, {
  groupId: "bench-native-responder",
  topics: [requestTopic],
  logger,
  onRecord(record) {
    const request = parseRequestHeaders(record.headers, names);
    const { correlationId: id, replyTo } = request;
    if (id === undefined || replyTo === undefined) return true;
    const out: ContractRecord[] = [];
    if (record.value === null) {
      out.push({ key: id, value: null, headers: replyEndHeaders(names, id, 0) });
      answered++;
    } else {
      const copies = request.method === "ServerStreamingEcho" ? serverStreamReplies : 1;
      for (let i = 0; i < copies; i++) {
        out.push({ key: id, value: record.value, headers: replyHeaders(names, id) });
      }
    }
    replies.send(replyTo, out).catch((error: unknown) => {
      process.stderr.write(`native responder: reply failed: ${String(error)}\n`);
    });
    return true;
  },
  async onRebalancing() {},
  onAssignment() {},
});

serveCommands(
  (command) => {
    if (command.cmd === "stats") return { answered, ...processStats() };
    throw new Error(`unknown command ${command.cmd}`);
  },
  async () => {
    await consumer.close().catch(() => {});
    await replies.close();
  },
);
emitReady();
