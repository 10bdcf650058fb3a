/**
 * West's lease on each request partition (docs/idempotency.md, "The lease"). A first attempt
 * does not write a STARTED entry of its own: one LEASE entry per changelog partition says
 * "west may start calls whose first record is below offset E", and a restore takes a call
 * below E with no entry of its own as started once. A first attempt starts once a lease
 * covering its first record is acknowledged that was written less than `validMs` before the
 * call asked (so that a restore, which reads back to a minute before the oldest uncommitted
 * request, finds it). The next lease is written ahead of need, once half of its offsets or
 * half of its time is used, so that under steady traffic no call waits for one. A lease
 * reaches about `aheadMs` of the partition's traffic past the record that asked for it (at
 * least `minAhead` offsets): after a crash, that many requests west never read may be taken
 * as started once.
 */
import type { JournalOutcome } from "./call-journal.ts";

export interface LeaseOptions {
  /** Writes a LEASE entry ending at `end`, retrying until acknowledged or west stops. */
  write(topic: string, partition: number, end: bigint): Promise<JournalOutcome>;
  /** How long after its write a lease lets calls that ask start (default 10 s). */
  validMs?: number;
  /** How much of the partition's traffic a lease reaches ahead (default 1 s). */
  aheadMs?: number;
  /** Fewest offsets a lease reaches past the record that asked for it (default 32). */
  minAhead?: number;
  /** Most offsets a lease reaches past it (default 65,536). */
  maxAhead?: number;
  now?: () => number;
}

export interface Leases {
  /**
   * "written" once a lease covering `offset` on the changelog partition is acknowledged and
   * fresh: at once when one is, else when the lease written for it is.
   */
  cover(topic: string, partition: number, offset: bigint): JournalOutcome | Promise<JournalOutcome>;
}

interface PartitionLease {
  /** The acknowledged lease covers offsets below this. */
  end: bigint;
  /** When the acknowledged lease's write was issued (epoch ms). */
  since: number;
  /** Which write the acknowledged lease is (writes are numbered as issued). */
  written: number;
  issued: number;
  /** Past this offset the next lease is written ahead of need. */
  renewAt: bigint;
  writing: Promise<JournalOutcome> | undefined;
  writingEnd: bigint;
  /** Where the partition was at the last write, for its rate of offsets. */
  rateOffset: bigint;
  rateAt: number;
}

/** The leases of one west binding's changelog partitions. */
export function createLeases(opts: LeaseOptions): Leases {
  const validMs = opts.validMs ?? 10_000;
  const aheadMs = opts.aheadMs ?? 1_000;
  const minAhead = opts.minAhead ?? 32;
  const maxAhead = opts.maxAhead ?? 65_536;
  const now = opts.now ?? Date.now;
  const leases = new Map<string, PartitionLease>();

  const renew = (
    lease: PartitionLease,
    topic: string,
    partition: number,
    offset: bigint,
    at: number,
  ): Promise<JournalOutcome> => {
    // Over a tenth of `aheadMs` at least: one turn's burst is not a rate.
    const rate = Number(offset - lease.rateOffset) / Math.max(aheadMs / 10, at - lease.rateAt);
    const ahead = Math.min(maxAhead, Math.max(minAhead, Math.ceil(rate * aheadMs)));
    lease.rateOffset = offset;
    lease.rateAt = at;
    const end = offset + 1n + BigInt(ahead);
    const seq = ++lease.issued;
    const written = opts.write(topic, partition, end).then((outcome) => {
      // The latest write stands, even when it reaches less far than an older one: what the
      // older one covered beyond it is as old as that write.
      if (outcome === "written" && seq > lease.written) {
        lease.written = seq;
        lease.end = end;
        lease.since = at;
        lease.renewAt = offset + 1n + BigInt(ahead >> 1);
      }
      if (lease.writing === written) lease.writing = undefined;
      return outcome;
    });
    lease.writing = written;
    lease.writingEnd = end;
    return written;
  };

  /**
   * `askedAt`: when the call first asked. Its record was read by then, so a lease written no
   * more than `validMs` before that is one a restore reads (see the file comment), however long
   * its acknowledgement then took.
   */
  const cover = (
    topic: string,
    partition: number,
    offset: bigint,
    askedAt?: number,
  ): JournalOutcome | Promise<JournalOutcome> => {
    const key = `${topic}\0${partition}`;
    const at = now();
    const asked = askedAt ?? at;
    let lease = leases.get(key);
    if (!lease) {
      lease = {
        end: -1n,
        since: 0,
        written: 0,
        issued: 0,
        renewAt: -1n,
        writing: undefined,
        writingEnd: -1n,
        rateOffset: offset,
        rateAt: at,
      };
      leases.set(key, lease);
    }
    if (offset < lease.end && asked - lease.since < validMs) {
      const age = at - lease.since;
      if (lease.writing === undefined && (offset >= lease.renewAt || age >= validMs / 2)) {
        // Ahead of need: its failure shows when a call has to wait for the next one.
        void renew(lease, topic, partition, offset, at);
      }
      return "written";
    }
    const pending =
      lease.writing !== undefined && offset < lease.writingEnd
        ? lease.writing
        : renew(lease, topic, partition, offset, at);
    // Checked again once written: a write issued long before the call asked is no good.
    return pending.then((outcome) =>
      outcome === "written" ? cover(topic, partition, offset, asked) : outcome,
    );
  };

  return { cover };
}
