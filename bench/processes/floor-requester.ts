/**
 * The floor's requester: plays the gRPC client and north at once with plain kafkajs. Each
 * call produces request records (message, end tombstone) keyed by a fresh correlation id,
 * and waits on a reply-topic consumer for the echoes and the status tombstone. `run`
 * keeps `concurrency` such calls in flight, like the load generators do against the gateway.
 */
import { createHash, randomUUID } from "node:crypto";
import { CORRELATION_ID, STATUS } from "../../src/kafka/header-names.ts";
import { emitReady, parseArgs, serveCommands, stringArg } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize } from "../lib/echo-payload.ts";
import {
  createBatchingProducer,
  createFloorKafka,
  echoService,
  floorRequestHeaders,
  headerText,
} from "../lib/floor-records.ts";
import { processStats } from "../lib/process-stats.ts";
import {
  bidiMessages,
  type LoadRunRequest,
  methodOf,
  runClosedLoop,
  type Scenario,
  serverStreamReplies,
} from "../lib/scenarios.ts";

const args = parseArgs();
const bootstrap = stringArg(args, "bootstrap");
const requestTopic = stringArg(args, "request-topic");
const replyTopic = stringArg(args, "reply-topic");
const replyTimeoutMs = 10_000;

type Reply = { value: Buffer | null; status: string | undefined };

/** The replies of one call, in arrival order, for the call's code to await one by one. */
class ReplyQueue {
  private readonly items: Reply[] = [];
  private waiter: ((reply: Reply) => void) | undefined;
  private failure: Error | undefined;
  private failWaiter: ((error: Error) => void) | undefined;

  push(reply: Reply): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter(reply);
    } else this.items.push(reply);
  }

  fail(error: Error): void {
    this.failure = error;
    this.failWaiter?.(error);
  }

  next(): Promise<Reply> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
}

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

// Correlation ids as long as the gateway's (uuid + "-" + md5 hex), so records weigh the same.
const idSuffix = new Map<string, string>();
function correlationIdFor(method: string): string {
  let suffix = idSuffix.get(method);
  if (suffix === undefined) {
    const input = `zilla:service${echoService}zilla:method${method}zilla:reply-to${replyTopic}`;
    suffix = createHash("md5").update(input).digest("hex");
    idSuffix.set(method, suffix);
  }
  return `${randomUUID()}-${suffix}`;
}

/** One call of the scenario over Kafka; throws unless every echo and the OK status arrive. */
async function floorCall(scenario: Scenario, payload: Buffer): Promise<void> {
  const method = methodOf(scenario.kind);
  const id = correlationIdFor(method);
  const headers = floorRequestHeaders(method, replyTopic, id);
  const queue = new ReplyQueue();
  waiting.set(id, queue);
  const timer = setTimeout(() => queue.fail(new Error("reply timeout")), replyTimeoutMs);
  const send = (value: Buffer | null) => {
    producer
      .send(requestTopic, [{ key: id, value, headers }])
      .catch((err: Error) => queue.fail(err));
  };
  const expectEcho = async () => {
    const reply = await queue.next();
    if (reply.value === null) throw new Error(`call ended early, status ${reply.status}`);
    if (!reply.value.equals(payload)) throw new Error("echo differs from request");
  };
  try {
    if (scenario.kind === "bidi") {
      for (let i = 0; i < bidiMessages; i++) {
        send(payload);
        await expectEcho();
      }
      send(null);
    } else {
      // Message and end marker leave together, as the gateway's unary and server-stream calls do.
      producer
        .send(requestTopic, [
          { key: id, value: payload, headers },
          { key: id, value: null, headers },
        ])
        .catch((err: Error) => queue.fail(err));
      const echoes = scenario.kind === "server-stream" ? serverStreamReplies : 1;
      for (let i = 0; i < echoes; i++) await expectEcho();
    }
    const end = await queue.next();
    if (end.value !== null) throw new Error("more replies than expected");
    if (end.status !== "0") throw new Error(`status ${end.status}`);
  } finally {
    clearTimeout(timer);
    waiting.delete(id);
  }
}

/** Calls until one round trip works: the reply consumer is then positioned and the responder up. */
async function awaitFirstRoundTrip(): Promise<void> {
  const probe: Scenario = { id: "probe", title: "probe", kind: "unary", payloadBytes: 16 };
  const payload = Buffer.from(echoRequestBytes(echoTextOfSize(16)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const attempt = floorCall(probe, payload);
    const ok = await Promise.race([
      attempt.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500)),
    ]);
    attempt.catch(() => {});
    if (ok) return;
    if (Date.now() > deadline) throw new Error("no floor round trip within 30 s");
  }
}

await awaitFirstRoundTrip();

serveCommands(
  (command) => {
    if (command.cmd === "stats") return processStats();
    if (command.cmd !== "run") throw new Error(`unknown command ${command.cmd}`);
    const request = command.request as LoadRunRequest;
    const payload = Buffer.from(echoRequestBytes(echoTextOfSize(request.scenario.payloadBytes)));
    return runClosedLoop(request, () => floorCall(request.scenario, payload));
  },
  async () => {
    await consumer.disconnect().catch(() => {});
    await producer.close();
  },
);
emitReady();
