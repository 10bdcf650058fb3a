/**
 * Hands a group member's fetched records to its handler: one at a time across partitions
 * (and brokers), in partition order, each only while the member may (settled, not paused,
 * still the generation that fetched it). A record not handed on, interrupted by a rebalance
 * or refused by the handler is read again from where it was; a refused record also pauses
 * its partition until the caller resumes it.
 */
import type { Logger } from "../../ops/logger.ts";
import type { PartitionReader } from "../client/partition-reader.ts";
import { KafkaProtocolError } from "../protocol/errors.ts";
import { type FetchedRecord, utf8 } from "../protocol/record-codec.ts";
import type { RecordHeader } from "../record-contract.ts";
import type { TopicPartition } from "./consumer-protocol.ts";
import { positionKey } from "./group-offsets.ts";
import { membershipReaction, needsRejoin } from "./membership-reaction.ts";

/** A consumed record in the contract's terms (`value: null` is a tombstone). */
export interface ConsumedRecord extends TopicPartition {
  offset: bigint;
  key: string | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
  timestampMs: number;
}

/** Thrown by `keepAlive` while the group rebalances (`type` as kafkajs names it). */
export class RebalancingError extends Error {
  override name = "RebalancingError";
  readonly type = "REBALANCE_IN_PROGRESS";
}

/** Whether a failure means the group is rebalancing (ours, or kafkajs' error types). */
export function isRebalancing(err: unknown): boolean {
  if (err instanceof RebalancingError) return true;
  if (err instanceof KafkaProtocolError) {
    return needsRejoin(membershipReaction(err)) || err.code === 16;
  }
  const type = (err as { type?: unknown } | null)?.type;
  return (
    type === "REBALANCE_IN_PROGRESS" ||
    type === "NOT_COORDINATOR_FOR_GROUP" ||
    type === "ILLEGAL_GENERATION"
  );
}

export interface RecordHandoffOptions {
  groupId: string;
  logger: Logger;
  onRecord(
    record: ConsumedRecord,
    keepAlive: () => Promise<void>,
  ): boolean | undefined | Promise<boolean | undefined>;
  /** The member's generation now. */
  generation(): number;
  /** Whether records fetched in `generation` may be handed on now. */
  mayHand(generation: number): boolean;
  /** Whether the member is settled (`keepAlive` throws when not). */
  settled(): boolean;
}

export interface RecordHandoff {
  /** The partition reader's `onRecords` for `reader`. */
  handler(
    reader: () => PartitionReader | undefined,
  ): (topic: string, partition: number, records: FetchedRecord[]) => Promise<void>;
  /** Resolves once every record handed so far has been handled. */
  idle(): Promise<void>;
  /** Partitions paused because a record was refused, in the order they were paused. */
  refused(): TopicPartition[];
  /** Forgets the refused partitions and returns them. */
  takeRefused(): TopicPartition[];
}

/** Creates the hand-off of one group member. */
export function createRecordHandoff(options: RecordHandoffOptions): RecordHandoff {
  const { groupId, logger } = options;
  // Records are handled one at a time across partitions (and brokers): a promise chain.
  let handling: Promise<void> = Promise.resolve();
  const refused = new Map<string, TopicPartition>();

  const keepAlive = async () => {
    if (!options.settled()) throw new RebalancingError(`group ${groupId} is rebalancing`);
  };

  return {
    handler(readerOf) {
      return (topic, partition, records) => {
        const generation = options.generation();
        const reader = readerOf();
        handling = handling.then(async () => {
          for (const fetched of records) {
            if (!options.mayHand(generation)) {
              reader?.seek(topic, partition, fetched.offset);
              return;
            }
            const record: ConsumedRecord = {
              topic,
              partition,
              offset: BigInt(fetched.offset),
              key: fetched.key === null ? null : keyText(fetched.key, fetched.headers),
              value: fetched.value,
              headers: fetched.headers,
              timestampMs: fetched.timestamp,
            };
            let accepted: boolean | undefined;
            try {
              const answer = options.onRecord(record, keepAlive);
              accepted = answer instanceof Promise ? await answer : answer;
            } catch (error) {
              // Not handled (a rebalance interrupted it): read it again, here or at the new owner.
              reader?.seek(topic, partition, fetched.offset);
              if (!isRebalancing(error)) logger.error("record handler failed", { groupId, error });
              return;
            }
            if (accepted === false) {
              const tp = { topic, partition };
              refused.set(positionKey(topic, partition), tp);
              reader?.pause([tp]);
              reader?.seek(topic, partition, fetched.offset);
              return;
            }
          }
        });
        return handling;
      };
    },
    idle: () => handling,
    refused: () => [...refused.values()],
    takeRefused() {
      const parts = [...refused.values()];
      refused.clear();
      return parts;
    },
  };
}

/**
 * A record's key as text. A request's key is most often its correlation id, which a header
 * carries too, already decoded: that string is taken when its bytes are the key's (ASCII).
 */
export function keyText(key: Uint8Array, headers: readonly (readonly [string, string])[]): string {
  const length = key.length;
  for (const [, value] of headers) {
    if (value.length !== length) continue;
    let same = true;
    for (let i = 0; i < length; i++) {
      const byte = key[i] as number;
      if (byte >= 0x80 || value.charCodeAt(i) !== byte) {
        same = false;
        break;
      }
    }
    if (same) return value;
  }
  return utf8(key);
}
