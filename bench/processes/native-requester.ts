/**
 * The native floor's requester: the same calls as the kafkajs floor (bench/lib/floor-call.ts),
 * carried by the gateway's own Kafka client as north uses it (src/kafka/: the request
 * producer and the reply reader over src/kafka/client/), with no gRPC. The gateway ÷ this
 * floor is what the gateway's gRPC layers cost on top of its Kafka client.
 */
import { defaultCorrelationHeaders } from "../../src/config/types.ts";
import { STATUS } from "../../src/kafka/header-names.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { requestHeaders } from "../../src/kafka/record-contract.ts";
import { startReplyReader } from "../../src/kafka/reply-reader.ts";
import { createRequestProducer } from "../../src/kafka/request-producer.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { emitReady, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize } from "../lib/echo-payload.ts";
import {
  awaitFirstRoundTrip,
  createCorrelationIds,
  echoService,
  type FloorTransport,
  floorCall,
} from "../lib/floor-call.ts";
import { processStats } from "../lib/process-stats.ts";
import { type LoadRunRequest, runClosedLoop } from "../lib/scenarios.ts";

const args = parseArgs();
const bootstrap = stringArg(args, "bootstrap");
const requestTopic = stringArg(args, "request-topic");
const replyTopic = stringArg(args, "reply-topic");
const names = defaultCorrelationHeaders;
const route = { capability: "produce" as const, topic: requestTopic, replyTo: replyTopic };

const logger = createLogger("warn", (line) => process.stderr.write(`${line}\n`));
const kafka = createKafka({ servers: [bootstrap] }, "bench-native-requester");
// The same settings as north's reply reader and request producer in the bench's gateway.
const reader = await startReplyReader({
  kafka,
  logger,
  topics: [replyTopic],
  correlationIdHeader: names.correlationId,
});
const requests = await createRequestProducer({ kafka, logger });

function statusOf(headers: readonly (readonly [string, string])[]): string | undefined {
  for (const [name, value] of headers) if (name === STATUS) return value;
  return undefined;
}

const transport: FloorTransport = {
  register(id, queue) {
    return reader.register(id, {
      onRecord: (record) => queue.push({ value: record.value, status: statusOf(record.headers) }),
      onFailure: (error) => queue.fail(error),
    });
  },
  send(method, id, values) {
    const headers = requestHeaders({
      route,
      names,
      service: echoService,
      method,
      correlationId: id,
      metadata: [],
    });
    return Promise.all(
      values.map((value) => requests.send(requestTopic, 1, { key: id, value, headers })),
    ).then(() => {});
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
    const payload = echoRequestBytes(echoTextOfSize(request.scenario.payloadBytes));
    return runClosedLoop(request, () =>
      floorCall(transport, correlationIdFor, request.scenario, payload),
    );
  },
  async () => {
    await Promise.all([reader.close(), requests.close()]);
  },
);
emitReady();
