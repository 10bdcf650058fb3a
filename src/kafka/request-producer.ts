/**
 * North's Kafka producer for request records. Records from concurrent calls are gathered
 * into one produce per scheduler turn and acks level. A batch may leave while others are in
 * flight (up to `maxInFlight`) only if none of its records has the key of a record in flight:
 * the records of one key (one call: one topic, one key, one partition) leave one batch after
 * the other, so they reach Kafka in the order they were queued even when a batch is retried,
 * while new calls' records need not wait for earlier calls' acknowledgements. No timer sits
 * on the path: a lone call's records leave on the next turn of the event loop. Written with
 * the gateway's own client (src/kafka/client/).
 */
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import type { Kafka } from "./kafka-client.ts";
import { KeysInFlight } from "./keys-in-flight.ts";
import { isKafkaUnreachable } from "./protocol/errors.ts";
import type { ContractRecord } from "./record-contract.ts";

export type AcksNumber = -1 | 0 | 1;

/** Why a produce failed, in terms the gRPC side can map to a status code. */
export class ProduceError extends Error {
  /** True when the cluster could not be reached (connection refused, closed, timed out). */
  readonly unreachable: boolean;

  constructor(message: string, unreachable: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = "ProduceError";
    this.unreachable = unreachable;
  }
}

export interface RequestProducer {
  /** Queues one record; resolves once Kafka acknowledged the batch holding it. */
  send(topic: string, acks: AcksNumber, record: ContractRecord): Promise<void>;
  /** Records queued or in flight, over every acks level. */
  readonly pending: number;
  /** Batches sent so far (one produce each, one Produce request per leader broker). */
  readonly batches: number;
  /** Waits for queued records, then disconnects. */
  close(): Promise<void>;
}

export interface RequestProducerOptions {
  kafka: Kafka;
  logger: Logger;
  /** Upper bound of one batch's payload, bytes (Kafka's default max.message.bytes is ~1 MB). */
  maxBatchBytes?: number;
  /** How long the broker may take to acknowledge a batch. */
  ackTimeoutMs?: number;
  /** Batches in flight at once per acks level (default 4; 1 sends one after the other). */
  maxInFlight?: number;
}

interface QueuedRecord {
  topic: string;
  record: ContractRecord;
  bytes: number;
  resolve: () => void;
  reject: (error: ProduceError) => void;
}

/** One acks level: its queue and its batches in flight. */
interface Lane {
  acks: AcksNumber;
  queue: QueuedRecord[];
  /** Index of the first record still queued (avoids shifting long arrays). */
  head: number;
  /** Batches in flight. */
  inFlight: number;
  keysInFlight: KeysInFlight;
  scheduled: boolean;
}

// setImmediate lets every call woken by one socket read queue its records before the flush;
// runtimes without it still flush without a timer.
const schedule: (fn: () => void) => void =
  typeof setImmediate === "function" ? (fn) => setImmediate(fn) : queueMicrotask;

/** Connects a batching producer for request records. */
export async function createRequestProducer(
  options: RequestProducerOptions,
): Promise<RequestProducer> {
  const maxBatchBytes = options.maxBatchBytes ?? 900_000;
  const ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
  const maxInFlight = Math.max(1, options.maxInFlight ?? 4);
  const cluster = new KafkaCluster(options.kafka.wire);
  try {
    await cluster.connect();
  } catch (error) {
    cluster.close();
    throw produceErrorFrom(error);
  }

  const lanes = new Map<AcksNumber, Lane>();
  let pending = 0;
  let batches = 0;
  let closed = false;
  let drained: (() => void) | undefined;

  const laneFor = (acks: AcksNumber): Lane => {
    let lane = lanes.get(acks);
    if (!lane) {
      lane = {
        acks,
        queue: [],
        head: 0,
        inFlight: 0,
        keysInFlight: new KeysInFlight(),
        scheduled: false,
      };
      lanes.set(acks, lane);
    }
    return lane;
  };

  const flush = (lane: Lane) => {
    lane.scheduled = false;
    if (lane.inFlight >= maxInFlight || lane.head >= lane.queue.length) return;
    // A queued record whose key is in flight waits, and everything behind it with it.
    if (lane.inFlight > 0 && queuedKeyInFlight(lane)) return;
    const batch = takeBatch(lane, maxBatchBytes);
    lane.inFlight++;
    for (const r of batch) lane.keysInFlight.add(r.record.key ?? "");
    batches++;
    cluster
      .produce(lane.acks, ackTimeoutMs, groupByTopic(batch))
      .then(
        () => {
          for (const r of batch) r.resolve();
        },
        (error: unknown) => {
          const failure = produceErrorFrom(error);
          options.logger.warn("request produce failed", {
            records: batch.length,
            error: failure.message,
            unreachable: failure.unreachable,
          });
          for (const r of batch) r.reject(failure);
        },
      )
      .finally(() => {
        lane.inFlight--;
        for (const r of batch) lane.keysInFlight.remove(r.record.key ?? "");
        pending -= batch.length;
        if (lane.head < lane.queue.length) flush(lane);
        else if (pending === 0) drained?.();
      });
  };

  return {
    get pending() {
      return pending;
    },
    get batches() {
      return batches;
    },
    send(topic, acks, record) {
      if (closed) return Promise.reject(new ProduceError("producer is closed", false));
      return new Promise<void>((resolve, reject) => {
        const lane = laneFor(acks);
        lane.queue.push({ topic, record, bytes: recordBytes(record), resolve, reject });
        pending++;
        if (lane.inFlight < maxInFlight && !lane.scheduled) {
          lane.scheduled = true;
          schedule(() => flush(lane));
        }
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (pending > 0) await new Promise<void>((resolve) => (drained = resolve));
      cluster.close();
    },
  };
}

/** Whether a queued record shares its key with a record in flight. */
function queuedKeyInFlight(lane: Lane): boolean {
  for (let i = lane.head; i < lane.queue.length; i++) {
    if (lane.keysInFlight.has((lane.queue[i] as QueuedRecord).record.key ?? "")) return true;
  }
  return false;
}

/** Takes queued records from the head of the lane up to `maxBytes` (at least one). */
function takeBatch(lane: Lane, maxBytes: number): QueuedRecord[] {
  let bytes = 0;
  let end = lane.head;
  while (end < lane.queue.length) {
    const next = lane.queue[end] as QueuedRecord;
    if (end > lane.head && bytes + next.bytes > maxBytes) break;
    bytes += next.bytes;
    end++;
  }
  const batch = lane.queue.slice(lane.head, end);
  if (end >= lane.queue.length) {
    lane.queue = [];
    lane.head = 0;
  } else {
    lane.head = end;
  }
  return batch;
}

/** Records per topic; order within each topic is queue order. */
function groupByTopic(batch: readonly QueuedRecord[]): Map<string, ContractRecord[]> {
  const byTopic = new Map<string, ContractRecord[]>();
  for (const r of batch) {
    const list = byTopic.get(r.topic);
    if (list) list.push(r.record);
    else byTopic.set(r.topic, [r.record]);
  }
  return byTopic;
}

/** Approximate encoded size, to keep one batch under the broker's message size limit. */
function recordBytes(record: ContractRecord): number {
  let bytes = 70 + (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) bytes += name.length + value.length + 4;
  return bytes;
}

/** A Kafka failure as a ProduceError, looking through retry wrappers for the first cause. */
export function produceErrorFrom(error: unknown): ProduceError {
  if (error instanceof ProduceError) return error;
  const unreachable = isKafkaUnreachable(error);
  const message = error instanceof Error ? error.message : String(error);
  return new ProduceError(message, unreachable, error);
}
