/**
 * Where west records what happened to its calls (docs/idempotency.md): in the changelog
 * topic of the call's request topic, on the partition the request was read from, each entry
 * acknowledged before the step it guards (the partition's LEASE before a first attempt's
 * upstream call, STARTED before a later attempt's, FINISHED and ABORTED before the reply's end
 * record); or nowhere, in memory mode, where nothing survives the process.
 */
import { KafkaProtocolError } from "../kafka/protocol/errors.ts";
import type { ContractRecord } from "../kafka/record-contract.ts";
import type { Logger } from "../ops/logger.ts";
import { type ChangelogEntry, entryParts, leaseEntry, leaseKey } from "./changelog-codec.ts";
import { createLeases } from "./changelog-lease.ts";
import type { ChangelogWriter } from "./changelog-writer.ts";
import type { RunningCall } from "./west-call.ts";

/** What an entry says about its call. */
export type JournalCall = Pick<
  RunningCall,
  "id" | "position" | "firstOffset" | "keyed" | "requestEnded" | "attempt" | "replyTo"
>;

/** How writing an entry ended: acknowledged, refused as too large, or west stopped first. */
export type JournalOutcome = "written" | "too-large" | "stopped";

export interface CallJournal {
  /** Entries go to Kafka; false in memory mode, where every write is done at once. */
  readonly durable: boolean;
  /**
   * The call is about to reach the upstream (attempt `call.attempt`): a first attempt under
   * its partition's lease, a later one with a STARTED entry of its own.
   */
  started(call: JournalCall): JournalOutcome | Promise<JournalOutcome>;
  /**
   * The upstream answered `status`; `records` is the whole reply (end record last) to keep
   * for replay, or undefined when it is too large to keep.
   */
  finished(
    call: JournalCall,
    status: number,
    replyBytes: number,
    records: readonly ContractRecord[] | undefined,
  ): Promise<JournalOutcome>;
  /** The call ended without an answer from the upstream, after STARTED. */
  aborted(call: JournalCall): Promise<JournalOutcome>;
}

/** Memory mode: nothing is written anywhere. */
export const memoryJournal: CallJournal = {
  durable: false,
  started: async (): Promise<JournalOutcome> => "written",
  finished: async () => "written",
  aborted: async () => "written",
};

export interface KafkaJournalOptions {
  writer: ChangelogWriter;
  /** The changelog of a request topic. */
  changelogOf(requestTopic: string): string;
  /** West crashed: stop at once. */
  crashed(): boolean;
  /** West is closing: give up after a failure instead of retrying. */
  closing(): boolean;
  logger: Logger;
}

const messageTooLarge = 10;

/** Writes entries to the changelog, retrying until acknowledged (or west stops). */
export function createKafkaJournal(opts: KafkaJournalOptions): CallJournal {
  const writeEntry = async (
    topic: string,
    partition: number,
    id: string,
    entry: ChangelogEntry,
  ): Promise<JournalOutcome> => {
    const bytes = entryParts(entry);
    let backoffMs = 100;
    for (;;) {
      if (opts.crashed()) return "stopped";
      try {
        await opts.writer.write(topic, partition, id, bytes);
        return "written";
      } catch (error) {
        if (
          error instanceof KafkaProtocolError &&
          error.code === messageTooLarge &&
          entry.reply?.records
        ) {
          return "too-large";
        }
        if (opts.closing()) return "stopped";
        opts.logger.warn("changelog write failed, retrying", {
          topic,
          partition,
          ...(id === leaseKey ? {} : { correlationId: id }),
          kind: entry.kind,
          error,
        });
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
  };
  const write = (call: JournalCall, entry: ChangelogEntry) =>
    writeEntry(opts.changelogOf(call.position.topic), call.position.partition, call.id, entry);
  const leases = createLeases({
    write: (topic, partition, end) => writeEntry(topic, partition, leaseKey, leaseEntry(end)),
  });
  return {
    durable: true,
    started: (call) =>
      call.attempt === 1
        ? leases.cover(
            opts.changelogOf(call.position.topic),
            call.position.partition,
            call.firstOffset,
          )
        : write(call, {
            kind: "started",
            keyed: call.keyed,
            requestEnded: call.requestEnded,
            requestOffset: call.firstOffset,
            attempt: call.attempt,
          }),
    finished: (call, status, replyBytes, records) =>
      write(call, {
        kind: "finished",
        keyed: call.keyed,
        requestEnded: call.requestEnded,
        requestOffset: call.position.offset,
        attempt: call.attempt,
        reply: {
          status,
          replyBytes,
          replyTo: call.replyTo,
          records: records ? [...records] : undefined,
        },
      }),
    aborted: (call) =>
      write(call, {
        kind: "aborted",
        keyed: call.keyed,
        requestEnded: call.requestEnded,
        requestOffset: call.position.offset,
        attempt: call.attempt,
      }),
  };
}
