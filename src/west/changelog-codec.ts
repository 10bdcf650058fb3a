/**
 * The entries of west's changelog (docs/idempotency.md, "Entries"): what west writes about
 * a call so that a restarted west, or the instance that takes its partition over, knows
 * whether the call reached the upstream and what it answered. The record key is the call's
 * correlation id; the value is one entry in this encoding (big-endian, lengths as unsigned
 * varints):
 *
 *   version u8 (= 1) · kind u8 · flags u8 · request offset i64 · attempt uvarint
 *   FINISHED only: status uvarint · reply bytes uvarint · reply topic string
 *                  · [flag "reply kept"] record count uvarint, each record:
 *                    value nullable bytes · header count uvarint · (name string, value string)…
 *
 * Kinds: STARTED (before the upstream call of an attempt after the first), FINISHED (the
 * upstream's answer), ABORTED (the call ended without an answer from the upstream after it may
 * have reached it: cancelled, deadline, reset),
 * LEASE (west may start first attempts of calls whose first record is below the request
 * offset it names, without a STARTED each: docs/idempotency.md, "The lease"). A LEASE entry
 * has the empty key, which no call has (a record with an empty correlation id is skipped).
 * Flags: bit 0 keyed (the request carried the idempotency metadata), bit 1 the request had
 * ended when the entry was written, bit 2 the reply is kept inline.
 *
 * A reader skips entries of a later version (a newer gateway's), so versions can roll.
 */

import { concatBytes } from "../bytes.ts";
import { valueBytes } from "../kafka/protocol/record-codec.ts";
import { Reader, Writer } from "../kafka/protocol/wire.ts";
import type { ContractRecord, RecordHeader } from "../kafka/record-contract.ts";

export const entryVersion = 1;

export type EntryKind = "started" | "finished" | "aborted" | "lease";

const kindCodes: Record<EntryKind, number> = { started: 1, finished: 2, aborted: 3, lease: 4 };
const kindsByCode: (EntryKind | undefined)[] = [
  undefined,
  "started",
  "finished",
  "aborted",
  "lease",
];

/** The record key of LEASE entries (one per changelog partition). */
export const leaseKey = "";

const keyedFlag = 1;
const requestEndedFlag = 2;
const replyKeptFlag = 4;

/** What every entry says about its call. */
export interface EntryHead {
  kind: EntryKind;
  /** The request carried the idempotency metadata: duplicates may come for the window. */
  keyed: boolean;
  /** The request had ended when the entry was written. */
  requestEnded: boolean;
  /**
   * Offset of the call's record in its request partition: the first record for STARTED,
   * the last one read for FINISHED and ABORTED; for LEASE, the first offset it does not cover.
   */
  requestOffset: bigint;
  /** How many times the call has been started (1 for the first). */
  attempt: number;
}

/** A FINISHED entry's answer. */
export interface FinishedReply {
  /** The reply's gRPC status. */
  status: number;
  /** Bytes of every reply record (values and headers), kept or not. */
  replyBytes: number;
  replyTo: string;
  /** Every reply record, the end record last; undefined when too large to keep. */
  records: ContractRecord[] | undefined;
}

export interface ChangelogEntry extends EntryHead {
  /** Present on FINISHED entries. */
  reply?: FinishedReply;
}

// Entries are written here, then their bytes copied out; a kept reply's values of more than a
// few hundred bytes are not copied at all: the entry goes out in pieces with them in between.
const scratch = new Writer(1024);

/** The bytes of one entry, as one array. */
export function encodeEntry(entry: ChangelogEntry): Uint8Array {
  const parts = entryParts(entry);
  return concatBytes(parts, valueBytes(parts));
}

/**
 * The bytes of one entry as pieces in order (a record value as written: see OutgoingRecord):
 * a kept reply's large values are pieces of their own, not copies. They must stay unchanged
 * while the entry is written, which holds: they are the upstream's answer, kept as read.
 */
export function entryParts(entry: ChangelogEntry): Uint8Array[] {
  const reply = entry.kind === "finished" ? entry.reply : undefined;
  if (entry.kind === "finished" && !reply) throw new Error("a FINISHED entry needs its reply");
  let flags = 0;
  if (entry.keyed) flags |= keyedFlag;
  if (entry.requestEnded) flags |= requestEndedFlag;
  if (reply?.records) flags |= replyKeptFlag;
  const w = scratch.reset();
  w.int8(entryVersion).int8(kindCodes[entry.kind]).int8(flags);
  w.int64(entry.requestOffset).uvarint(entry.attempt);
  if (reply) {
    w.uvarint(reply.status).uvarint(reply.replyBytes).compactString(reply.replyTo);
    if (reply.records) {
      w.uvarint(reply.records.length);
      for (const record of reply.records) writeRecord(w, record);
    }
  }
  return w.detachedSegments();
}

/** A LEASE entry: first attempts of calls whose first record is below `end` may start. */
export function leaseEntry(end: bigint): ChangelogEntry {
  return { kind: "lease", keyed: false, requestEnded: false, requestOffset: end, attempt: 0 };
}

function writeRecord(w: Writer, record: ContractRecord): void {
  const value = record.value;
  if (value === null) w.uvarint(0);
  else w.uvarint(value.length + 1).rawRef(value);
  w.uvarint(record.headers.length);
  for (const [name, value] of record.headers) w.compactString(name).compactString(value);
}

/**
 * The head of an entry, without decoding its reply (restore reads many entries it drops);
 * undefined for an entry of a later version or an unknown kind. Throws on broken bytes.
 */
export function decodeEntryHead(bytes: Uint8Array): EntryHead | undefined {
  const r = new Reader(bytes);
  const version = r.int8();
  if (version !== entryVersion) return undefined;
  const kind = kindsByCode[r.int8()];
  if (kind === undefined) return undefined;
  const flags = r.int8();
  return {
    kind,
    keyed: (flags & keyedFlag) !== 0,
    requestEnded: (flags & requestEndedFlag) !== 0,
    requestOffset: r.int64(),
    attempt: r.uvarint(),
  };
}

/** A whole entry; `key` is the record key (the correlation id) the reply records carry. */
export function decodeEntry(bytes: Uint8Array, key: string): ChangelogEntry | undefined {
  const r = new Reader(bytes);
  const version = r.int8();
  if (version !== entryVersion) return undefined;
  const kind = kindsByCode[r.int8()];
  if (kind === undefined) return undefined;
  const flags = r.int8();
  const entry: ChangelogEntry = {
    kind,
    keyed: (flags & keyedFlag) !== 0,
    requestEnded: (flags & requestEndedFlag) !== 0,
    requestOffset: r.int64(),
    attempt: r.uvarint(),
  };
  if (kind !== "finished") return entry;
  const status = r.uvarint();
  const replyBytes = r.uvarint();
  const replyTo = r.compactString();
  let records: ContractRecord[] | undefined;
  if ((flags & replyKeptFlag) !== 0) {
    const count = r.uvarint();
    records = [];
    for (let i = 0; i < count; i++) records.push(readRecord(r, key));
  }
  entry.reply = { status, replyBytes, replyTo, records };
  return entry;
}

function readRecord(r: Reader, key: string): ContractRecord {
  const stored = r.compactNullableBytes();
  // A copy: the fetched buffer it points into is not kept alive by the entry.
  const value = stored === null ? null : stored.slice();
  const count = r.uvarint();
  const headers: RecordHeader[] = [];
  for (let i = 0; i < count; i++) headers.push([r.compactString(), r.compactString()]);
  return { key, value, headers };
}
