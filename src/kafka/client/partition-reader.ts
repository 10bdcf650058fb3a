/**
 * Reads assigned partitions (no consumer group): every partition of the given topics, from
 * positions the caller gives or from each partition's end or beginning, with one long-poll
 * Fetch loop per leader broker. Leader moves, lost connections and new partitions are
 * followed from metadata; a position past the log (OFFSET_OUT_OF_RANGE) restarts from the
 * policy's end. A batch it cannot decode holds its partition there (or is skipped, by the
 * reporter's policy: src/kafka/undecodable-batches.ts). North's reply reader, west's group
 * member and the fetch capability's topic readers use it.
 *
 * Why one file over 500 lines: `startPartitionReader` is one closure over the reader's state
 * (positions, paused partitions, one fetch loop per leader, partitions waiting for a
 * position) because placing, fetching, following leaders and pausing all change that same
 * state; the response parsing and batch decoding below it are separate functions already.
 * Placing partitions (`place`, `placeOrKeep`, `placeLater`) is the part that could become a
 * unit of its own, with the state passed in.
 */
import { ApiKey } from "../protocol/api-keys.ts";
import {
  isRetriableCode,
  KafkaAnswerError,
  KafkaProtocolError,
  kafkaCodeName,
} from "../protocol/errors.ts";
import {
  DEFAULT_BATCH_MAX_BYTES,
  type DecodeOptions,
  decodeBatches,
  type FetchedRecord,
} from "../protocol/record-codec.ts";
import type { Reader } from "../protocol/wire.ts";
import type { UndecodableEvent, UndecodableReporter } from "../undecodable-batches.ts";
import type { KafkaCluster } from "./kafka-cluster.ts";
import { backoff } from "./retry.ts";

export interface PartitionReaderOptions {
  cluster: KafkaCluster;
  topics: readonly string[];
  /**
   * Only these partitions (a group member's assignment; empty: none until `add`); default
   * every partition of `topics`, and partitions that appear later too.
   */
  assigned?: readonly { topic: string; partition: number }[];
  /** Where a partition without a position in `positions` starts. */
  start: "latest" | "earliest";
  /** Next offset to read per "topic\0partition" (overrides `start`). */
  positions?: ReadonlyMap<string, number>;
  /** Longest time the broker holds a fetch with nothing to return. */
  maxWaitMs: number;
  /** Bytes per partition per fetch (at least one whole batch comes back regardless). */
  partitionMaxBytes: number;
  /** Bytes per fetch response. */
  maxBytes: number;
  /**
   * The records read from one partition, in offset order. A returned promise holds this
   * broker's next fetch until it settles (backpressure).
   */
  onRecords(topic: string, partition: number, records: FetchedRecord[]): void | Promise<void>;
  /** Give records their header values as bytes too (see FetchedRecord.headerBytes). */
  headerBytes?: boolean;
  /** Headers whose values repeat from record to record (see DecodeOptions.repeatedValues). */
  repeatedValues?: ReadonlySet<string>;
  /** Every Fetch response a broker answered, with its size in bytes (for stats, liveness). */
  onFetched?(responseBytes: number): void;
  /** Something went wrong that reading works around (logged by the caller). */
  onProblem?(message: string, error: unknown): void;
  /** How often metadata is re-read to find new partitions and leaders (default 30 s). */
  metadataRefreshMs?: number;
  /**
   * Where batches this reader cannot decode are reported, and whether their partition is
   * held there (policy "fail") or they are skipped ("skip"). Absent: held, and said through
   * `onProblem`. The reader closes it when it stops.
   */
  undecodable?: UndecodableReporter;
}

/**
 * Most bytes one batch may decompress to: 16 times the partition's fetch size, at least
 * 64 MiB (a batch over it is undecodable, so a decompression bomb costs no more memory).
 */
export function batchMaxBytes(partitionMaxBytes: number): number {
  return Math.max(DEFAULT_BATCH_MAX_BYTES, 16 * partitionMaxBytes);
}

export interface PartitionReader {
  /** Next offset to read, per "topic\0partition". */
  positions(): Map<string, number>;
  /** Reads `topic`-`partition` from `offset` on (from inside `onRecords`: after this batch). */
  seek(topic: string, partition: number, offset: number): void;
  /** Partitions held at a batch that could not be decoded, with the batch's offset. */
  held(): { topic: string; partition: number; offset: number }[];
  /** Stops fetching these partitions until `resume`. */
  pause(partitions: readonly { topic: string; partition: number }[]): void;
  resume(partitions: readonly { topic: string; partition: number }[]): void;
  /**
   * Assigned partitions still without a position (their ListOffsets keeps failing), with
   * the last failure: they are retried until placed, and read from then on.
   */
  unplaced(): { topic: string; partition: number; error: unknown }[];
  /** Reads these partitions too, each from its offset; a partition already read stays as it is. */
  add(partitions: readonly { topic: string; partition: number; offset: number }[]): void;
  /** Stops reading these partitions and forgets their positions (records on their way are dropped). */
  remove(partitions: readonly { topic: string; partition: number }[]): void;
  /** Stops fetching (a long poll in flight is left to the cluster's close). */
  stop(): void;
}

interface Position {
  topic: string;
  partition: number;
  offset: number;
  paused: boolean;
  /** Held at an undecodable batch at `offset`: not fetched until sought elsewhere. */
  held?: boolean;
}

/** Positions every partition, then starts reading; resolves once positioned. */
export async function startPartitionReader(
  options: PartitionReaderOptions,
): Promise<PartitionReader> {
  const { cluster } = options;
  const state = new Map<string, Position>();
  const loops = new Map<number, Promise<void>>();
  let stopped = false;
  let started = false;

  const place = async (
    topic: string,
    partitions: readonly number[],
    from: "latest" | "earliest",
  ) => {
    const unplaced: number[] = [];
    for (const partition of partitions) {
      const key = `${topic}\0${partition}`;
      // Given positions count once, at the start (a reset must not go back to them).
      const given = started ? undefined : options.positions?.get(key);
      if (given !== undefined) state.set(key, { topic, partition, offset: given, paused: false });
      else unplaced.push(partition);
    }
    if (unplaced.length === 0) return;
    const offsets = await cluster.listOffsets(topic, unplaced, from === "latest" ? -1 : -2, {
      onRetry: (error) =>
        options.onProblem?.(
          `no position yet for ${topic} [${unplaced.join(", ")}]; retrying`,
          error,
        ),
    });
    for (const o of offsets) {
      const key = `${o.topic}\0${o.partition}`;
      const known = state.get(key);
      if (known) known.offset = o.offset;
      else
        state.set(key, { topic: o.topic, partition: o.partition, offset: o.offset, paused: false });
    }
  };

  // A group member's partitions that could not be placed: retried until they are (a
  // partition of the assignment must never be left unread), and reported meanwhile.
  const unplaced = new Map<string, { topic: string; partition: number; error: unknown }>();
  let placeTimer: ReturnType<typeof setTimeout> | undefined;
  let placeFailures = 0;

  /** Places `partitions`, or keeps them as unplaced (with why) for `placeLater`. */
  const placeOrKeep = async (topic: string, partitions: readonly number[]) => {
    try {
      await cluster.partitionsWithin(topic, Date.now() + cluster.settings.retryTimeoutMs);
      await place(topic, partitions, options.start);
      for (const partition of partitions) unplaced.delete(`${topic}\0${partition}`);
    } catch (error) {
      const left = partitions.filter((p) => !state.has(`${topic}\0${p}`));
      for (const partition of left) {
        unplaced.set(`${topic}\0${partition}`, { topic, partition, error });
      }
      options.onProblem?.(
        `no position for ${topic} [${left.join(", ")}]; these partitions are not read until one is found`,
        error,
      );
    }
  };

  const placeLater = () => {
    if (stopped || placeTimer || unplaced.size === 0) return;
    placeTimer = setTimeout(async () => {
      const byTopic = new Map<string, number[]>();
      for (const { topic, partition } of unplaced.values()) {
        byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
      }
      const before = unplaced.size;
      for (const [topic, partitions] of byTopic) await placeOrKeep(topic, partitions);
      placeFailures = unplaced.size < before ? 0 : placeFailures + 1;
      placeTimer = undefined;
      ensureLoops();
      placeLater();
    }, backoff(placeFailures));
    placeTimer.unref?.();
  };

  if (options.assigned) {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of options.assigned) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    for (const [topic, partitions] of byTopic) await placeOrKeep(topic, partitions);
  } else {
    for (const topic of options.topics) {
      const partitions = await cluster.partitionsWithin(
        topic,
        Date.now() + cluster.settings.retryTimeoutMs,
      );
      await place(
        topic,
        partitions.map((p) => p.partition),
        options.start,
      );
    }
  }

  /** Picks up partitions that appeared since (they are read from their beginning). */
  const adoptNewPartitions = async () => {
    // A group member reads its assignment only; new partitions come with a rebalance.
    if (options.assigned) return;
    for (const topic of options.topics) {
      const partitions = await cluster.partitions(topic);
      const fresh = partitions.map((p) => p.partition).filter((p) => !state.has(`${topic}\0${p}`));
      if (fresh.length > 0) await place(topic, fresh, "earliest");
    }
  };

  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (refreshing) return refreshing;
    refreshing = cluster
      .refresh(options.topics)
      .then(adoptNewPartitions)
      .catch((error: unknown) => options.onProblem?.("metadata refresh failed", error))
      .finally(() => {
        refreshing = undefined;
        ensureLoops();
      });
    return refreshing;
  };

  const ensureLoops = () => {
    if (stopped) return;
    let leaderless = false;
    for (const p of state.values()) {
      if (p.paused || p.held) continue;
      const leader = cluster.leaderOf(p.topic, p.partition);
      if (leader < 0) leaderless = true;
      else if (!loops.has(leader)) {
        const loop = fetchLoop(leader).finally(() => {
          loops.delete(leader);
          // Partitions may have moved to a broker whose loop just ended.
          ensureLoops();
        });
        loops.set(leader, loop);
      }
    }
    if (leaderless) setTimeout(() => void refresh(), 500).unref?.();
  };

  // Consecutive failures per broker, for the backoff before its loop starts again.
  const failures = new Map<number, number>();

  /** Sends one Fetch for `node`'s unpaused partitions; undefined when it has none. */
  const sendFetch = async (node: number, turn: number): Promise<FetchSent | undefined> => {
    // Paused partitions stay out of the fetch: their records would only be dropped, and
    // a paused partition behind its head would make every fetch return at once (a spin).
    const mine = [...state.values()].filter(
      (p) => !p.paused && !p.held && cluster.leaderOf(p.topic, p.partition) === node,
    );
    if (mine.length === 0) return undefined;
    // The broker fills a response in request order and stops at maxBytes: a different
    // partition goes first each time, so that one partition's backlog holds up no other.
    const first = turn % mine.length;
    if (first > 0) mine.push(...mine.splice(0, first));
    const connection = await cluster.connection(node, "fetch");
    const version = connection.version(ApiKey.Fetch, 4, 11);
    const fetchedAt = new Map(mine.map((p) => [p, p.offset]));
    const byTopic = new Map<string, Position[]>();
    for (const p of mine) {
      const list = byTopic.get(p.topic);
      if (list) list.push(p);
      else byTopic.set(p.topic, [p]);
    }
    const r = await connection.request(
      ApiKey.Fetch,
      version,
      (w) => {
        w.int32(-1).int32(options.maxWaitMs).int32(1).int32(options.maxBytes).int8(0);
        if (version >= 7) w.int32(0).int32(-1); // no fetch session
        w.array([...byTopic], (w, [topic, list]) => {
          w.string(topic);
          w.array(list, (w, p) => {
            w.int32(p.partition);
            if (version >= 9) w.int32(-1);
            w.int64(p.offset);
            if (version >= 5) w.int64(-1);
            w.int32(options.partitionMaxBytes);
          });
        });
        if (version >= 7) w.int32(0); // forgotten topics
        if (version >= 11) w.string("");
      },
      options.maxWaitMs,
    );
    return { r, version, fetchedAt };
  };

  const fetchLoop = async (node: number) => {
    // The next Fetch leaves as soon as an answer is decoded, before its records are handed
    // on: the broker long-polls for new records while this side works through the last ones
    // (handing replies to hundreds of calls takes a while), instead of after.
    let next: Promise<FetchSent | undefined> | undefined;
    for (let turn = 0; !stopped; turn++) {
      try {
        const sent = await (next ?? sendFetch(node, turn));
        next = undefined;
        if (!sent) return;
        options.onFetched?.(sent.r.end);
        const { problems, batches } = readFetchResponse(sent, state, options, decodeOptions);
        failures.delete(node);
        if (!problems.refresh && problems.outOfRange.length === 0 && !stopped) {
          next = sendFetch(node, turn + 1);
          // Awaited below; until then a failure must not count as unhandled.
          next.catch(() => {});
        }
        for (const batch of batches) {
          const p = batch.position;
          // Sought elsewhere by the records handed on before these: that position stands.
          if (p.offset !== batch.nextOffset) continue;
          if (stopped || p.paused) {
            // Not handed on: read them again after a resume.
            p.offset = batch.fromOffset;
            continue;
          }
          const result = options.onRecords(p.topic, p.partition, batch.records);
          if (result) await result;
        }
        for (const p of problems.outOfRange) {
          // Removed meanwhile: placing it would read it again.
          if (state.get(`${p.topic}\0${p.partition}`) !== p) continue;
          await place(p.topic, [p.partition], options.start).catch((error: unknown) =>
            options.onProblem?.(`could not reposition ${p.topic}-${p.partition}`, error),
          );
        }
        // Leaders moved: read metadata again; the partitions go to their new brokers' loops.
        if (problems.refresh) await refresh();
      } catch (error) {
        next = undefined;
        if (stopped) return;
        const failed = failures.get(node) ?? 0;
        failures.set(node, failed + 1);
        options.onProblem?.(`fetch from broker ${node} failed; retrying`, error);
        await new Promise((resolve) => setTimeout(resolve, backoff(failed)));
        await refresh();
      }
    }
  };

  const decodeOptions: DecodeOptions = {
    maxDecompressedBytes: batchMaxBytes(options.partitionMaxBytes),
    ...(options.headerBytes ? { headerBytes: true } : {}),
    ...(options.repeatedValues ? { repeatedValues: options.repeatedValues } : {}),
  };
  started = true;
  ensureLoops();
  placeLater();
  const timer = setInterval(() => void refresh(), options.metadataRefreshMs ?? 30_000);
  timer.unref?.();

  return {
    positions() {
      const out = new Map<string, number>();
      for (const [key, p] of state) out.set(key, p.offset);
      return out;
    },
    seek(topic, partition, offset) {
      const p = state.get(`${topic}\0${partition}`);
      if (!p) return;
      if (p.held && p.offset !== offset) {
        p.held = false;
        options.undecodable?.released(topic, partition);
        ensureLoops();
      }
      p.offset = offset;
    },
    held() {
      return [...state.values()]
        .filter((p) => p.held)
        .map((p) => ({ topic: p.topic, partition: p.partition, offset: p.offset }));
    },
    pause(partitions) {
      for (const { topic, partition } of partitions) {
        const p = state.get(`${topic}\0${partition}`);
        if (p) p.paused = true;
      }
    },
    resume(partitions) {
      for (const { topic, partition } of partitions) {
        const p = state.get(`${topic}\0${partition}`);
        if (p) p.paused = false;
      }
      ensureLoops();
    },
    unplaced: () => [...unplaced.values()],
    add(partitions) {
      for (const { topic, partition, offset } of partitions) {
        const key = `${topic}\0${partition}`;
        if (!state.has(key)) state.set(key, { topic, partition, offset, paused: false });
      }
      ensureLoops();
    },
    remove(partitions) {
      for (const { topic, partition } of partitions) {
        const key = `${topic}\0${partition}`;
        const p = state.get(key);
        unplaced.delete(key);
        if (!p) continue;
        // Paused as well: a fetched batch of it that is still to be handed on is dropped.
        p.paused = true;
        state.delete(key);
      }
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(placeTimer);
      options.undecodable?.close();
    },
  };
}

interface FetchProblems {
  refresh: boolean;
  outOfRange: Position[];
  /** A partition the answer names that the request did not ask for. */
  notAsked?: string;
}

/** A Fetch on its way: the answer, its version and the positions it asked from. */
interface FetchSent {
  r: Reader;
  version: number;
  fetchedAt: ReadonlyMap<Position, number>;
}

/** One partition's records from an answer, and the position they moved it to. */
interface FetchedBatch {
  position: Position;
  records: FetchedRecord[];
  /** The position before and after these records. */
  fromOffset: number;
  nextOffset: number;
}

/** Decodes an answer: moves positions past its records and returns them with any problems. */
function readFetchResponse(
  sent: FetchSent,
  state: Map<string, Position>,
  options: PartitionReaderOptions,
  decode: DecodeOptions,
): { problems: FetchProblems; batches: FetchedBatch[] } {
  const { r, version, fetchedAt } = sent;
  const problems: FetchProblems = { refresh: false, outOfRange: [] };
  const batches: FetchedBatch[] = [];
  r.int32(); // throttle
  if (version >= 7) {
    const error = r.int16();
    r.int32(); // session id
    if (error !== 0) throw new KafkaProtocolError(error, `fetch refused: ${kafkaCodeName(error)}`);
  }
  const topics = r.int32();
  for (let t = 0; t < topics; t++) {
    const topic = r.string();
    const partitions = r.int32();
    for (let i = 0; i < partitions; i++) {
      const partition = r.int32();
      const error = r.int16();
      r.int64(); // high watermark
      r.int64(); // last stable offset
      if (version >= 5) r.int64(); // log start offset
      const aborted = r.int32();
      for (let a = 0; a < aborted; a++) r.raw(16);
      if (version >= 11) r.int32(); // preferred read replica
      const records = r.nullableBytes();
      const position = state.get(`${topic}\0${partition}`);
      if (!position || !fetchedAt.has(position)) {
        // Not asked for (a broker bug): its records are no one's to read.
        if (!wasAsked(fetchedAt, topic, partition)) problems.notAsked ??= `${topic}-${partition}`;
        continue;
      }
      // Paused while this fetch was out: its records are read again after the resume.
      // Sought elsewhere meanwhile: this answer is for a position no longer wanted.
      if (position.paused || fetchedAt.get(position) !== position.offset) continue;
      if (error !== 0) {
        if (error === 1) problems.outOfRange.push(position);
        else if (isRetriableCode(error)) problems.refresh = true;
        else {
          options.onProblem?.(
            `fetch of ${topic}-${partition} refused`,
            new KafkaProtocolError(error, kafkaCodeName(error)),
          );
          problems.refresh = true;
        }
        continue;
      }
      if (!records || records.length === 0) continue;
      const out: FetchedRecord[] = [];
      position.offset = decodePartition(records, position, out, options, decode);
      if (out.length > 0) {
        const fromOffset = fetchedAt.get(position) as number;
        batches.push({ position, records: out, fromOffset, nextOffset: position.offset });
      }
    }
  }
  if (problems.notAsked !== undefined) {
    options.onProblem?.(
      "fetch answer broke the protocol; its other partitions were read",
      new KafkaAnswerError(`Fetch answer names ${problems.notAsked}, which was not asked for`),
    );
    problems.refresh = true;
  }
  return { problems, batches };
}

/** Whether a fetch asked for `topic`-`partition` (its position may since have been replaced). */
function wasAsked(
  fetchedAt: ReadonlyMap<Position, number>,
  topic: string,
  partition: number,
): boolean {
  for (const p of fetchedAt.keys()) if (p.partition === partition && p.topic === topic) return true;
  return false;
}

/**
 * Decodes one partition's records from `position.offset` into `out`; returns the offset to
 * read next. An undecodable batch is skipped (policy "skip", reading goes on past it) or
 * holds the partition (the default): the records before it are handed on, none after.
 */
function decodePartition(
  records: Uint8Array,
  position: Position,
  out: FetchedRecord[],
  options: PartitionReaderOptions,
  decode: DecodeOptions,
): number {
  const { topic, partition } = position;
  const push = (record: FetchedRecord) => out.push(record);
  let bytes = records;
  let from = position.offset;
  for (;;) {
    const result = decodeBatches(bytes, from, push, decode);
    from = result.next;
    const batch = result.undecodable;
    if (!batch) return from;
    const event: UndecodableEvent = {
      topic,
      partition,
      baseOffset: batch.baseOffset,
      lastOffset: batch.lastOffset,
      reason: batch.error.message,
    };
    const reporter = options.undecodable;
    if (reporter?.policy === "skip") {
      reporter.skipped(event);
      from = Math.max(from, batch.lastOffset + 1);
      bytes = bytes.subarray(result.resumeAt);
      continue;
    }
    position.held = true;
    if (reporter) reporter.held(event);
    else options.onProblem?.(`${topic}-${partition} held at offset ${from}`, batch.error);
    return from;
  }
}
