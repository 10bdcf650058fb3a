/**
 * North's Kafka producer for request records. Records from concurrent calls are gathered
 * into one produce per scheduler turn and acks level; each record learns its own outcome
 * (a batch that spans partitions acknowledges one partition's records even when another's
 * fail), and is retried until its call's deadline, at most the client's maximum
 * (`produceRetryMaxMs`). A batch may leave while others are in flight (up to `maxInFlight`,
 * not counting batches that wait to be retried); it takes no record whose key is in flight:
 * the records of one key (one call: one topic, one key, one partition) leave one after the
 * other, so they reach Kafka in the order they were queued even when a batch is retried,
 * while other calls' records go on. No timer sits on the path: a lone call's records leave
 * on the next turn of the event loop. Written with the gateway's own client
 * (src/kafka/client/).
 */
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster, type ProduceItem } from "./client/kafka-cluster.ts";
import { isRecordList } from "./client/produce-items.ts";
import type { Kafka } from "./kafka-client.ts";
import { KeysInFlight } from "./keys-in-flight.ts";
import { isKafkaUnreachable, isTooLargeCode, KafkaProtocolError } from "./protocol/errors.ts";
import { approxRecordBytes, type ContractRecord } from "./record-contract.ts";

export type AcksNumber = -1 | 0 | 1;

/** Why a produce failed, in terms the gRPC side can map to a status code. */
export class ProduceError extends Error {
  /**
   * True when the cluster could not be reached (connection refused, closed, timed out) or
   * kept answering with an error a retry may cure (no leader) until the record's deadline.
   */
  readonly unreachable: boolean;

  constructor(message: string, unreachable: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = "ProduceError";
    this.unreachable = unreachable;
  }
}

/**
 * Told how one record's produce ended (the promise-free form of `send`). Records submitted
 * with one listener are one call's: when one fails, those still queued behind it fail with
 * it, unsent (a call's request never reaches Kafka with a record missing in the middle).
 */
export interface ProduceListener {
  /** Kafka acknowledged the record, `seconds` after it was queued. */
  onProduced(seconds: number): void;
  onProduceFailed(error: ProduceError): void;
}

export interface RequestProducer {
  /**
   * Queues one record; resolves once Kafka acknowledged it. It is retried until
   * `deadlineMs` (ms since the epoch; default: no deadline), at most the client's maximum.
   */
  send(topic: string, acks: AcksNumber, record: ContractRecord, deadlineMs?: number): Promise<void>;
  /**
   * `send` without a promise and its resolvers per record: the outcome goes to `listener`
   * (north's calls listen themselves, so a record in flight costs one object). Several
   * records (of one key) are written in one batch, with one outcome.
   */
  submit(
    topic: string,
    acks: AcksNumber,
    record: ContractRecord | readonly ContractRecord[],
    deadlineMs: number,
    listener: ProduceListener,
  ): void;
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

interface QueuedRecord extends ProduceItem {
  topic: string;
  /** One record, or several of one call that go together (its end and cancel markers). */
  records: ContractRecord | readonly ContractRecord[];
  /** The records' key (one call's records share it). */
  key: string;
  deadlineMs: number;
  bytes: number;
  listener: ProduceListener;
  /** performance.now() when it was queued. */
  queuedAt: number;
  /** Its key counts in `keysInFlight`: from when it leaves until it is acknowledged or its batch is over. */
  keyHeld: boolean;
}

/** One acks level: its queue and its batches in flight. */
interface Lane {
  acks: AcksNumber;
  queue: QueuedRecord[];
  /** Index of the first record still queued (avoids shifting long arrays). */
  head: number;
  /** Batches in flight, except those waiting to be retried. */
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
  /** Batches whose produce has not finished (retried ones included). */
  let running = 0;
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
    const batch = takeBatch(lane, maxBatchBytes);
    // Everything queued has a key in flight: it leaves once those records are done.
    if (batch.length === 0) return;
    lane.inFlight++;
    running++;
    for (const r of batch) {
      lane.keysInFlight.add(r.key);
      r.keyHeld = true;
    }
    batches++;
    let slotHeld = true;
    let failed = 0;
    let firstFailure: ProduceError | undefined;
    /** Records refused with their whole batch, to go again alone (see `settle`). */
    const again: QueuedRecord[] = [];
    cluster
      .produceEach(lane.acks, ackTimeoutMs, batch, {
        settle(r, error) {
          if (
            error &&
            batch.length > 1 &&
            r.bytes !== aloneBytes &&
            error instanceof KafkaProtocolError &&
            isTooLargeCode(error.code)
          ) {
            // Kafka refuses a partition's whole batch when it passes the topic's limit: this
            // record may only have shared it with a larger one. It goes again, alone, ahead
            // of its call's later records; refused alone, it fails.
            r.bytes = aloneBytes;
            again.push(r);
            return;
          }
          pending--;
          if (error) {
            const failure = produceErrorFrom(error);
            failed++;
            firstFailure ??= failure;
            // Its call's records queued behind it must not follow it after a gap; what the
            // call sends once told (its end markers) goes out as usual.
            const dropped = dropQueuedOf(lane, r.listener);
            pending -= dropped.length;
            r.listener.onProduceFailed(failure);
            for (const d of dropped) d.listener.onProduceFailed(failure);
            return;
          }
          // Acknowledged: this call's next records need not wait for the rest of the batch.
          r.keyHeld = false;
          lane.keysInFlight.remove(r.key);
          r.listener.onProduced((performance.now() - r.queuedAt) / 1000);
          if (!slotHeld) kick(lane);
        },
        retrying() {
          // Waiting to be retried takes no slot: other calls' records go on meanwhile.
          slotHeld = false;
          lane.inFlight--;
          kick(lane);
        },
      })
      .then(() => {
        running--;
        if (slotHeld) lane.inFlight--;
        if (again.length > 0) {
          lane.queue = [...again, ...lane.queue.slice(lane.head)];
          lane.head = 0;
        }
        for (const r of batch) {
          if (!r.keyHeld) continue;
          r.keyHeld = false;
          lane.keysInFlight.remove(r.key);
        }
        if (firstFailure) {
          options.logger.warn("request produce failed", {
            records: failed,
            of: batch.length,
            error: firstFailure.message,
            unreachable: firstFailure.unreachable,
          });
        }
        if (lane.head < lane.queue.length) flush(lane);
        else if (pending === 0 && running === 0) drained?.();
      });
  };

  /** Flushes `lane` on the next turn, if it has records and a free slot. */
  const kick = (lane: Lane) => {
    if (lane.scheduled || lane.head >= lane.queue.length || lane.inFlight >= maxInFlight) return;
    lane.scheduled = true;
    schedule(() => flush(lane));
  };

  const submit: RequestProducer["submit"] = (topic, acks, record, deadlineMs, listener) => {
    if (closed) {
      const error = new ProduceError("producer is closed", false);
      queueMicrotask(() => listener.onProduceFailed(error));
      return;
    }
    const lane = laneFor(acks);
    let first: ContractRecord | undefined;
    let bytes = 0;
    if (isRecordList(record)) {
      first = record[0];
      for (const r of record) bytes += approxRecordBytes(r);
    } else {
      first = record;
      bytes = approxRecordBytes(record);
    }
    lane.queue.push({
      topic,
      records: record,
      key: first?.key ?? "",
      deadlineMs,
      bytes,
      listener,
      queuedAt: performance.now(),
      keyHeld: false,
    });
    pending++;
    kick(lane);
  };

  return {
    get pending() {
      return pending;
    },
    get batches() {
      return batches;
    },
    send(topic, acks, record, deadlineMs = Number.POSITIVE_INFINITY) {
      return new Promise<void>((resolve, reject) => {
        submit(topic, acks, record, deadlineMs, {
          onProduced: () => resolve(),
          onProduceFailed: reject,
        });
      });
    },
    submit,
    async close() {
      if (closed) return;
      closed = true;
      if (pending > 0 || running > 0) await new Promise<void>((resolve) => (drained = resolve));
      cluster.close();
    },
  };
}

/** A queued record's size that makes it a batch of its own (takeBatch never adds to it). */
const aloneBytes = Number.MAX_SAFE_INTEGER;

/** Takes the queued (not yet sent) records of one call out of `lane`, in order. */
function dropQueuedOf(lane: Lane, listener: ProduceListener): QueuedRecord[] {
  const dropped: QueuedRecord[] = [];
  const left: QueuedRecord[] = [];
  const queue = lane.queue;
  for (let i = lane.head; i < queue.length; i++) {
    const r = queue[i] as QueuedRecord;
    if (r.listener === listener) dropped.push(r);
    else left.push(r);
  }
  if (dropped.length > 0) {
    lane.queue = left;
    lane.head = 0;
  }
  return dropped;
}

/**
 * Takes queued records from the head of the lane up to `maxBytes` (at least one), leaving
 * behind, in order, those whose key is in flight (a key's records are either all left
 * behind or taken in order, so no key's records reorder).
 */
function takeBatch(lane: Lane, maxBytes: number): QueuedRecord[] {
  const queue = lane.queue;
  const keys = lane.keysInFlight;
  const checkKeys = keys.size > 0;
  let bytes = 0;
  let end = lane.head;
  for (; end < queue.length; end++) {
    const next = queue[end] as QueuedRecord;
    if (checkKeys && keys.has(next.key)) return takeAround(lane, maxBytes);
    if (end > lane.head && bytes + next.bytes > maxBytes) break;
    bytes += next.bytes;
  }
  const batch = queue.slice(lane.head, end);
  if (end >= queue.length) {
    lane.queue = [];
    lane.head = 0;
  } else {
    lane.head = end;
  }
  return batch;
}

/** takeBatch when some queued records have a key in flight: those stay queued, in order. */
function takeAround(lane: Lane, maxBytes: number): QueuedRecord[] {
  const queue = lane.queue;
  const batch: QueuedRecord[] = [];
  const left: QueuedRecord[] = [];
  let bytes = 0;
  let i = lane.head;
  for (; i < queue.length; i++) {
    const next = queue[i] as QueuedRecord;
    if (lane.keysInFlight.has(next.key)) {
      left.push(next);
      continue;
    }
    if (batch.length > 0 && bytes + next.bytes > maxBytes) break;
    bytes += next.bytes;
    batch.push(next);
  }
  for (; i < queue.length; i++) left.push(queue[i] as QueuedRecord);
  lane.queue = left;
  lane.head = 0;
  return batch;
}

/**
 * A Kafka failure as a ProduceError, looking through retry wrappers for the first cause. An
 * error a retry could have cured (a leader that stayed away until the deadline) counts as
 * the cluster being unreachable: the call may succeed later, unlike a refused record.
 */
export function produceErrorFrom(error: unknown): ProduceError {
  if (error instanceof ProduceError) return error;
  const unreachable =
    isKafkaUnreachable(error) || (error instanceof KafkaProtocolError && error.retriable);
  const message = error instanceof Error ? error.message : String(error);
  return new ProduceError(message, unreachable, error);
}
