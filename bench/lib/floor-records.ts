/**
 * The floor's records: the same shape as the gateway's request and reply records (docs/contract.md: Request records,
 * §4: one record per message, a null-value end marker, correlation id as key and header),
 * so the floor moves the same bytes through Kafka as the gateway does. kafkajs is used
 * directly here on purpose: the floor is "plain kafkajs, no gateway".
 */
import { type IHeaders, Kafka, logLevel, type Message, type Producer } from "kafkajs";
import { CORRELATION_ID, METHOD, REPLY_TO, SERVICE, STATUS } from "../../src/kafka/header-names.ts";
import { echoService } from "./floor-call.ts";

/** A kafkajs client whose logs go to stderr (stdout carries the bench protocol). */
export function createFloorKafka(clientId: string, bootstrap: string): Kafka {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      process.stderr.write(`${entry.namespace}: ${entry.log.message}\n`);
    },
  });
}

/** Headers of every request record of one floor call. */
export function floorRequestHeaders(
  method: string,
  replyTo: string,
  correlationId: string,
): IHeaders {
  return {
    [SERVICE]: echoService,
    [METHOD]: method,
    [REPLY_TO]: replyTo,
    [CORRELATION_ID]: correlationId,
  };
}

/** The text value of a kafkajs header, if present. */
export function headerText(headers: IHeaders | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  const first = Array.isArray(raw) ? raw[0] : raw;
  return first === undefined ? undefined : first.toString();
}

/** A reply message record, or the end tombstone when `value` is null. */
export function floorReply(correlationId: string, value: Buffer | null): Message {
  return {
    key: correlationId,
    value,
    headers:
      value === null
        ? { [CORRELATION_ID]: correlationId, [STATUS]: "0" }
        : { [CORRELATION_ID]: correlationId },
  };
}

export interface BatchingProducer {
  /** Queues messages for `topic`; they leave with everything else queued this turn. */
  send(topic: string, messages: Message[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * kafkajs producer that gathers every record queued in one event-loop turn into a single
 * `sendBatch`, one batch in flight at a time: the same batching the gateway's request
 * producer does, so the floor is the best plain kafkajs offers rather than one produce
 * request per record.
 */
export async function createBatchingProducer(
  kafka: Kafka,
  acks: -1 | 0 | 1,
): Promise<BatchingProducer> {
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  type Queued = {
    topic: string;
    messages: Message[];
    resolve: () => void;
    reject: (e: Error) => void;
  };
  let queue: Queued[] = [];
  let inFlight = false;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (inFlight || queue.length === 0) return;
    const batch = queue;
    queue = [];
    inFlight = true;
    const byTopic = new Map<string, Message[]>();
    for (const q of batch) {
      const list = byTopic.get(q.topic);
      if (list) list.push(...q.messages);
      else byTopic.set(q.topic, [...q.messages]);
    }
    producer
      .sendBatch({
        acks,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
      .then(
        () => {
          for (const q of batch) q.resolve();
        },
        (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          for (const q of batch) q.reject(error);
        },
      )
      .finally(() => {
        inFlight = false;
        if (queue.length > 0) flush();
      });
  };
  return {
    send(topic, messages) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ topic, messages, resolve, reject });
        if (!inFlight && !scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    async close() {
      await producer.disconnect().catch(() => {});
    },
  };
}
