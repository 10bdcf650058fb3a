/**
 * The gateway's Kafka work alone, in one process: north's request producer and reply
 * reader, west's group consumer and reply producer (src/kafka/), with no gRPC on either
 * side: each call produces a request message and its end marker, the consumer answers
 * every end marker with a reply message and a status tombstone, and the call ends when the
 * tombstone reaches the reply reader. Closed loop at each concurrency against the bench's
 * broker process; prints calls/s, p50/p99 and CPU per call of this process and the broker.
 *
 *   npx bun bench/profile/kafka-loop.ts [--concurrency 1,64] [--duration-ms 3000]
 */
import { randomUUID } from "node:crypto";
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import { startGroupConsumer } from "../../src/kafka/group-consumer.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { replyEndHeaders, replyHeaders, requestHeaders } from "../../src/kafka/record-contract.ts";
import { startReplyProducer } from "../../src/kafka/reply-producer.ts";
import { startReplyReader } from "../../src/kafka/reply-reader.ts";
import { createRequestProducer } from "../../src/kafka/request-producer.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize } from "../lib/echo-payload.ts";
import { measureClosedLoop } from "./closed-loop.ts";

const args = parseArgs();
const concurrencies = (args.get("concurrency") ?? "1,64").split(",").map(Number);
const durationMs = Number(args.get("duration-ms") ?? 3000);
const requestTopic = "loop-requests";
const replyTopic = "loop-replies";
const names = defaultCorrelationHeaders;

const broker = spawnChild<{ bootstrap: string }>("broker", "processes/broker.ts", [
  "--partitions",
  "3",
  "--topics",
  `${requestTopic},${replyTopic}`,
]);
const { bootstrap } = await broker.ready;
const logger = createLogger("warn", (line) => process.stderr.write(`${line}\n`));
const kafka = createKafka({ servers: [bootstrap] }, "kafka-loop");
const reader = await startReplyReader({
  kafka,
  logger,
  topics: [replyTopic],
  correlationIdHeader: names.correlationId,
});
const requests = await createRequestProducer({ kafka, logger });
const replies = await startReplyProducer(kafka, { acks: "leader_only", logger });
const consumer = await startGroupConsumer(kafka, {
  groupId: "kafka-loop",
  topics: [requestTopic],
  logger,
  async onRecord(record) {
    if (record.value !== null || record.key === null) return true;
    const id = record.key;
    void replies.send(replyTopic, [
      { key: id, value: payload, headers: replyHeaders(names, id) },
      { key: id, value: null, headers: replyEndHeaders(names, id, 0) },
    ]);
    return true;
  },
  async onRebalancing() {},
  onAssignment() {},
});

const payload = echoRequestBytes(echoTextOfSize(100));
const route = { capability: "produce" as const, topic: requestTopic, replyTo: replyTopic };

function call(): Promise<void> {
  const id = `${randomUUID()}-46ae5cdb4b46cbb367cbad0bea36a56f`;
  return new Promise<void>((resolve, reject) => {
    const unregister = reader.register(id, {
      onRecord(record) {
        if (record.value === null) {
          unregister();
          resolve();
        }
      },
      onFailure: reject,
    });
    const headers = requestHeaders({
      route,
      names,
      service: "grpc.examples.echo.Echo",
      method: "UnaryEcho",
      correlationId: id,
      metadata: [],
    });
    void requests.send(requestTopic, 1, { key: id, value: payload, headers });
    void requests.send(requestTopic, 1, { key: id, value: null, headers });
  });
}

await measureClosedLoop(concurrencies, durationMs, call, broker);
await Promise.all([reader.close(), requests.close(), replies.close(), consumer.close()]);
await broker.stop(2_000);
process.exit(0);
