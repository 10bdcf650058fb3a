/**
 * The grpc-kafka `fetch` capability (docs/contract.md: Fetch): a server-streaming call becomes a live,
 * resumable read of a Kafka topic. Every call reads independently from the earliest offset
 * of each partition (or from its `last-message-id`), through the route's filters, and
 * keeps streaming new records until it is cancelled or the gateway stops; a client's
 * half-close does not end it.
 *
 * Each response message is the record value followed by the message id field
 * (message-id.ts). Records with a null value (tombstones) carry no message to send and are
 * skipped; the position still moves past them, so a resumed call does not see them either.
 *
 * Calls on the same topic share one reader and one bounded ring per partition
 * (src/kafka/topic-fanout.ts has the design); a call that falls more than `maxLagRecords`
 * behind the head is ended with RESOURCE_EXHAUSTED and can resume from its last message id.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { FetchWith, GrpcKafkaOptions } from "../../config/types.ts";
import type { Kafka } from "../../kafka/kafka-client.ts";
import {
  createTopicFanout,
  FanoutClosedError,
  FanoutLagError,
  FanoutReaderError,
  type TopicFanoutStats,
} from "../../kafka/topic-fanout.ts";
import type { Logger } from "../../ops/logger.ts";
import { createRecordFilter } from "./fetch-filter.ts";
import {
  appendMessageIdField,
  encodeMessageId,
  lengthDelimitedTag,
  parseMessageId,
} from "./message-id.ts";

/** One fetch call as the server hands it over. */
export interface FetchCall {
  route: FetchWith;
  /** The request message's bytes (must be empty). */
  request: Uint8Array;
  metadata: Headers;
  /** Aborts when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

export interface FetchCapability {
  /** The response messages' bytes, until the signal aborts or the capability closes. */
  stream(call: FetchCall): AsyncIterable<Uint8Array>;
  /** Readers and calls per topic, and fetch requests sent (tests, metrics). */
  stats(): TopicFanoutStats;
  /** Ends every fetch call with UNAVAILABLE and stops the topic readers. */
  close(): Promise<void>;
}

export interface FetchCapabilityOptions {
  kafka: Kafka;
  logger: Logger;
  options: GrpcKafkaOptions;
  /** Records a call may fall behind a partition's head before it is ended (default 10,000). */
  maxLagRecords?: number;
  /** How long a topic reader outlives its last call (default 30 s). */
  idleCloseMs?: number;
}

/** Creates the fetch capability of one grpc-kafka binding. */
export function createFetchCapability(opts: FetchCapabilityOptions): FetchCapability {
  const { logger } = opts;
  const { field, metadata: resumeMetadata } = opts.options.reliability;
  const tag = lengthDelimitedTag(field);
  const fanout = createTopicFanout({
    kafka: opts.kafka,
    logger,
    ...(opts.maxLagRecords !== undefined ? { maxLagRecords: opts.maxLagRecords } : {}),
    ...(opts.idleCloseMs !== undefined ? { idleCloseMs: opts.idleCloseMs } : {}),
  });

  async function* stream(call: FetchCall): AsyncGenerator<Uint8Array> {
    if (call.request.byteLength > 0) {
      // Zilla's contract: a fetch takes no parameters, so a request body is a client error.
      throw new ConnectError("a fetch call takes an empty request message", Code.Aborted);
    }
    const resume = resumePositions(call.metadata.get(resumeMetadata), resumeMetadata, logger);
    const accept = createRecordFilter(call.route.filters);
    let subscription: Awaited<ReturnType<typeof fanout.subscribe>>;
    try {
      subscription = await fanout.subscribe(call.route.topic, {
        ...(resume ? { resume } : {}),
        signal: call.signal,
      });
    } catch (error) {
      throw connectErrorFromFanout(error);
    }
    try {
      for (;;) {
        let record: Awaited<ReturnType<typeof subscription.next>>;
        try {
          record = await subscription.next();
        } catch (error) {
          throw connectErrorFromFanout(error);
        }
        if (record === undefined) return;
        if (record.value === null || !accept(record)) continue;
        yield appendMessageIdField(record.value, tag, encodeMessageId(subscription.positions()));
      }
    } finally {
      subscription.close();
    }
  }

  return {
    stream,
    stats: () => fanout.stats(),
    close: () => fanout.close(),
  };
}

/** Resume positions from the metadata value; an invalid id means "from earliest". */
function resumePositions(
  text: string | null,
  name: string,
  logger: Logger,
): Map<number, number> | undefined {
  if (text === null || text === "") return undefined;
  const positions = parseMessageId(text.trim());
  if (positions === undefined) logger.debug("invalid message id, reading from earliest", { name });
  return positions;
}

/** A fan-out failure as the call's status. */
function connectErrorFromFanout(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof FanoutLagError) {
    // The gateway stopped keeping records for this call; it can resume from its last id.
    return new ConnectError(error.message, Code.ResourceExhausted);
  }
  if (error instanceof FanoutClosedError) {
    // The gateway is stopping: another instance (or this one, restarted) can serve a resume.
    return new ConnectError(`fetch ended: ${error.message}`, Code.Unavailable);
  }
  if (error instanceof FanoutReaderError && error.unreachable) {
    // The cluster could not be reached: retrying later may succeed.
    return new ConnectError(`kafka unavailable: ${error.message}`, Code.Unavailable);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectError(`fetch failed: ${message}`, Code.Internal);
}
