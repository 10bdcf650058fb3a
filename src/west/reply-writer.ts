/**
 * How west writes replies (docs/contract.md: Reply records): a call's reply records as the upstream sends them (a
 * single reply's message held back to leave with its status), the end record, replays of
 * a kept reply, and answers west gives itself; each written until Kafka acknowledges it.
 */
import { Code } from "@connectrpc/connect";
import type { CorrelationHeaders } from "../config/types.ts";
import { isTooLargeCode, kafkaCodeName, kafkaRefusalIn } from "../kafka/protocol/errors.ts";
import { type ContractRecord, replyEndHeaders, replyHeaders } from "../kafka/record-contract.ts";
import type { ReplyProducer } from "../kafka/reply-producer.ts";
import type { WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger } from "../ops/logger.ts";
import type { ResponseFields } from "./response-fields.ts";
import { type RunningCall, recordBytes } from "./west-call.ts";

export interface ReplyWriter {
  /** A response message of `call` (`header`: the response header, on the first one). */
  emit(call: RunningCall, bytes: Uint8Array, header: ResponseFields | undefined): void;
  /**
   * The end record of a reply, kept with the call's reply; `attemptId` tags west's own
   * answer to that one attempt (docs/contract.md: difference 9).
   */
  endRecord(
    call: RunningCall,
    code: number,
    message: string | undefined,
    metadata: [string, string][],
    attemptId?: string,
  ): ContractRecord;
  /** Produces records once; rejects when their batch failed. */
  send(topic: string, records: ContractRecord[]): Promise<void>;
  /**
   * Produces records until Kafka acknowledges them; false if west stopped first. Records
   * Kafka refuses for good (too large for the topic, say) are not tried again: the call's
   * end record with an error status goes instead (see `lostEnd`).
   */
  writeReliably(topic: string, records: ContractRecord[]): Promise<boolean>;
  /**
   * The end record of a call whose reply lost a record that cannot be written again (Kafka
   * refused it, or the reply was too large to keep): an error status, never OK.
   */
  lostEnd(topic: string, id: string, error: unknown): ContractRecord;
  /** Writes a kept reply again; false if west stopped first. */
  replay(replyTo: string, reply: ContractRecord[], id: string): Promise<boolean>;
  /**
   * Answers call `id` with a status and no message (tagged with `attemptId`, the attempt
   * answered, when it has one); false if west stopped first.
   */
  answer(
    replyTo: string,
    id: string,
    code: number,
    message: string,
    attemptId?: string,
  ): Promise<boolean>;
}

export interface ReplyWriterOptions {
  producer: ReplyProducer;
  names: CorrelationHeaders;
  /** Largest reply kept for replay (all records, values and headers). */
  keepMaxBytes: number;
  /** West crashed: stop at once. */
  crashed(): boolean;
  /** West is closing: give up after a failure instead of retrying. */
  closing(): boolean;
  logger: Logger;
  metrics?: WestMetrics | undefined;
}

/** The reply side of west's calls. */
export function createReplyWriter(opts: ReplyWriterOptions): ReplyWriter {
  const { producer, names, logger } = opts;

  const lostEnd = (topic: string, id: string, error: unknown): ContractRecord => {
    const refusal = kafkaRefusalIn(error);
    const code = refusal && isTooLargeCode(refusal.code) ? Code.ResourceExhausted : Code.Internal;
    const why = !refusal
      ? `it could not be produced (${error instanceof Error ? error.message : String(error)})`
      : code === Code.ResourceExhausted
        ? `Kafka refused it, ${kafkaCodeName(refusal.code)}: the topic's max.message.bytes is smaller than the record`
        : `Kafka refused it, ${kafkaCodeName(refusal.code)}`;
    return {
      key: id,
      value: null,
      headers: replyEndHeaders(
        names,
        id,
        code,
        `a reply record for topic ${topic} is missing: ${why}`,
        [],
      ),
    };
  };

  const writeReliably = async (topic: string, records: ContractRecord[]): Promise<boolean> => {
    let backoffMs = 100;
    let writing = records;
    for (;;) {
      if (opts.crashed()) return false;
      try {
        await producer.send(topic, writing);
        return true;
      } catch (err) {
        if (opts.closing()) return false;
        const id = writing[0]?.key;
        if (kafkaRefusalIn(err) && writing === records && id) {
          // Retrying cannot help: the call ends with an error instead of hanging on it.
          logger.error("reply record refused by Kafka, the call ends with an error", {
            topic,
            correlationId: id,
            error: err,
          });
          writing = [lostEnd(topic, id, err)];
          continue;
        }
        logger.warn("reply produce failed, retrying", { topic, error: err });
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
  };

  /** Keeps a reply record for replays, unless the reply outgrew what may be kept. */
  const keep = (call: RunningCall, record: ContractRecord) => {
    call.replyCount++;
    call.replyBytes += recordBytes(record);
    if (call.replyBytes > opts.keepMaxBytes) call.reply = undefined;
    else call.reply?.push(record);
  };

  return {
    emit(call, bytes, header) {
      if (call.abandoned) return;
      const record: ContractRecord = {
        key: call.id,
        value: bytes,
        headers: replyHeaders(names, call.id, header ? header.entries() : []),
      };
      keep(call, record);
      if (call.singleReply && call.heldReply === undefined) {
        call.heldReply = record;
        return;
      }
      // Batches go out in order, so awaiting the end record later covers this one too.
      const failed = (error: unknown) => {
        call.sendFailed = true;
        call.sendError ??= error;
      };
      // More than one message after all: the held one goes first, each record an item of
      // its own (two large messages together could pass Kafka's batch limit).
      if (call.heldReply) producer.send(call.replyTo, [call.heldReply]).catch(failed);
      call.heldReply = undefined;
      producer.send(call.replyTo, [record]).catch(failed);
    },
    endRecord(call, code, message, metadata, attemptId) {
      const end: ContractRecord = {
        key: call.id,
        value: null,
        headers: replyEndHeaders(names, call.id, code, message, metadata, attemptId),
      };
      keep(call, end);
      return end;
    },
    send: (topic, records) => producer.send(topic, records),
    writeReliably,
    lostEnd,
    replay(replyTo, reply, _id) {
      opts.metrics?.replayed();
      return writeReliably(replyTo, reply);
    },
    answer(replyTo, id, code, message, attemptId) {
      const end: ContractRecord = {
        key: id,
        value: null,
        headers: replyEndHeaders(names, id, code, message, [], attemptId),
      };
      return writeReliably(replyTo, [end]);
    },
  };
}
