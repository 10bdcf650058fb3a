/**
 * Topic fan-out for the fetch capability (docs/contract.md: Fetch): many concurrent calls read the same
 * topic, each at its own position, without each holding a copy of the topic or fetching the
 * same bytes from the broker again.
 *
 * Design
 * - One shared reader per topic, reading assigned partitions with the gateway's own client
 *   (src/kafka/client/partition-reader.ts): no consumer group is ever joined or created and
 *   nothing is committed; the reader positions every partition itself.
 * - Per partition a bounded ring (PartitionRing) of the most recent records, at most
 *   `maxLagRecords` records and `ringMaxBytes` bytes. The shared reader never waits for
 *   anyone: it appends, evicts the oldest, and wakes the waiting subscriptions.
 * - A subscription (one call) keeps, per partition, its position (next offset). At the live
 *   edge it holds a sequence number into the ring and reads records from there: no copy,
 *   no fetch, no per-call buffer; the call's own pace is its backpressure. If the ring
 *   evicts a record the call has not read, the call is more than `maxLagRecords` (or the
 *   ring's bytes) behind the head and ends with FanoutLagError; it can resume from its last
 *   message id, which puts it on the catch-up path.
 * - A subscription positioned before what the ring holds, or more than half the lag bound
 *   behind the head, catches up with a short-lived reader of its own (assigned partitions
 *   again, starting at the subscription's positions) that buffers at most
 *   `catchUpBufferRecords` per partition, pausing the partition when the call does not keep
 *   up. Once a partition's position is within half the lag bound of the head and inside the
 *   ring, that partition joins the live edge; when every partition has, the catch-up reader
 *   is stopped. The half-bound margin keeps a call that just joined from being evicted by
 *   the next record.
 * - When a topic's shared reader starts, its rings begin at max(earliest, high watermark −
 *   half the lag bound) (ListOffsets), so it never reads deep history that no live call needs.
 * - Every reader has a KafkaCluster of its own: a broker answers the requests of one
 *   connection in order, so a long poll of one reader would hold up another's fetches.
 * - Partitions added to a topic while its shared reader runs are found with the reader's
 *   metadata refresh (`metadataRefreshMs`) and read from their earliest offset; calls already
 *   open read them from there too.
 * - Fetching that keeps failing (the cluster unreachable) for `failAfterMs` ends the
 *   topic's calls with FanoutReaderError; a refusal retrying cannot cure ends them at once.
 * - A topic's shared reader closes `idleCloseMs` after its last subscription left.
 *
 * Why one file over 500 lines: the shared TopicReader, a call's Subscription and its
 * CatchUpReader are one mechanism. They hand rings, cursors and partitions to each other
 * (`adopt`, `canJoin`, `drained`, `release`) under invariants stated once above (the
 * half-bound margin, eviction meaning lag); in separate modules those hand-offs would become
 * public surface that nothing else may call. The records' shape, the errors and the small
 * helpers at the end are the only parts that could move, and they are short.
 */
import type { Logger } from "../ops/logger.ts";
import { KafkaCluster } from "./client/kafka-cluster.ts";
import { type PartitionReader, startPartitionReader } from "./client/partition-reader.ts";
import type { Kafka } from "./kafka-client.ts";
import { PartitionRing } from "./partition-ring.ts";
import { isKafkaUnreachable, KafkaProtocolError } from "./protocol/errors.ts";
import type { FetchedRecord } from "./protocol/record-codec.ts";

/** One record as the fetch capability sees it (bytes copied out of the Fetch response). */
export interface FanoutRecord {
  partition: number;
  offset: number;
  key: Uint8Array | null;
  /** `null` for a tombstone. */
  value: Uint8Array | null;
  headers: ReadonlyArray<readonly [name: string, value: Uint8Array]>;
  size: number;
}

export interface TopicFanoutOptions {
  /** The gateway's Kafka handle (its `wire` settings are what the readers use). */
  kafka: Kafka;
  logger: Logger;
  /** A call at the live edge further behind its partition's head than this is ended. */
  maxLagRecords?: number;
  /** Bytes one partition's ring may hold (evicting past it also ends slow calls). */
  ringMaxBytes?: number;
  /** How long a topic's shared reader stays up after its last subscription left. */
  idleCloseMs?: number;
  /**
   * Records a catch-up reader buffers per partition before it pauses that partition; the
   * fetch that fills the buffer adds at most `catchUpFetchBytes` of records.
   */
  catchUpBufferRecords?: number;
  /** Most bytes one catch-up fetch returns (default 1 MiB). */
  catchUpFetchBytes?: number;
  /** Longest one fetch waits at the broker for new records. */
  maxWaitTimeMs?: number;
  /** How long fetching may keep failing before the calls reading are ended (default 30 s). */
  failAfterMs?: number;
  /** How often shared readers re-read metadata to find new partitions (default 30 s). */
  metadataRefreshMs?: number;
}

export interface SubscribeOptions {
  /** Positions to start from; partitions not listed start from the earliest offset. */
  resume?: ReadonlyMap<number, number>;
  /** Ends the subscription (next() then resolves `undefined`). */
  signal: AbortSignal;
}

/** One call's view of a topic. */
export interface TopicSubscription {
  /**
   * The next record of any partition (each partition in order), waiting for one if needed;
   * `undefined` once the signal aborted or the subscription was closed. Throws
   * FanoutLagError when the call fell too far behind, FanoutReaderError when reading failed.
   */
  next(): Promise<FanoutRecord | undefined>;
  /** [partition, next offset] for every partition, ascending by partition. */
  positions(): Array<[partition: number, nextOffset: number]>;
  /** Releases the subscription (idempotent). */
  close(): void;
}

export interface TopicFanoutStats {
  topics: Array<{
    topic: string;
    subscriptions: number;
    catchUpReaders: number;
    ringRecords: number;
    ringBytes: number;
    /** Records fetched by catch-up readers and not yet read by their calls. */
    catchUpBufferedRecords: number;
  }>;
  /** Fetch requests answered for shared and catch-up readers since creation. */
  fetchRequests: number;
  /** Bytes of Fetch responses received. */
  fetchResponseBytes: number;
  /** Catch-up readers started since creation (calls that began behind the rings). */
  catchUpReadersStarted: number;
}

export interface TopicFanout {
  /** Subscribes to `topic`, starting its shared reader if needed. */
  subscribe(topic: string, options: SubscribeOptions): Promise<TopicSubscription>;
  stats(): TopicFanoutStats;
  /** Ends every subscription (FanoutClosedError) and stops every reader. */
  close(): Promise<void>;
}

/** The call fell further behind the head than the fan-out keeps records for. */
export class FanoutLagError extends Error {
  override readonly name = "FanoutLagError";
}

/** The fan-out was closed (server stop). */
export class FanoutClosedError extends Error {
  override readonly name = "FanoutClosedError";
}

/** Reading the topic failed; `unreachable` when the cluster could not be reached. */
export class FanoutReaderError extends Error {
  override readonly name = "FanoutReaderError";
  readonly unreachable: boolean;
  constructor(message: string, unreachable: boolean, cause?: unknown) {
    super(message, { cause });
    this.unreachable = unreachable;
  }
}

/** Creates the fan-out; readers start on first subscription. */
export function createTopicFanout(options: TopicFanoutOptions): TopicFanout {
  const settings: Settings = {
    kafka: options.kafka,
    logger: options.logger,
    maxLagRecords: positiveInteger(options.maxLagRecords ?? 10_000, "maxLagRecords"),
    ringMaxBytes: options.ringMaxBytes ?? 64 * 1024 * 1024,
    idleCloseMs: options.idleCloseMs ?? 30_000,
    catchUpBufferRecords: positiveInteger(
      options.catchUpBufferRecords ?? 1_000,
      "catchUpBufferRecords",
    ),
    catchUpFetchBytes: options.catchUpFetchBytes ?? 1024 * 1024,
    maxWaitTimeMs: options.maxWaitTimeMs ?? 1_000,
    failAfterMs: options.failAfterMs ?? 30_000,
    metadataRefreshMs: options.metadataRefreshMs ?? 30_000,
    counters: { fetchRequests: 0, fetchResponseBytes: 0, catchUpReaders: 0 },
    starting: new Set(),
  };
  const readers = new Map<string, TopicReader>();
  let closed = false;

  return {
    async subscribe(topic, subscribeOptions) {
      if (closed) throw new FanoutClosedError("the gateway is stopping");
      let reader = readers.get(topic);
      if (reader === undefined) {
        const created = new TopicReader(topic, settings, () => {
          if (readers.get(topic) === created) readers.delete(topic);
        });
        readers.set(topic, created);
        reader = created;
      }
      return reader.subscribe(subscribeOptions);
    },
    stats() {
      return {
        topics: [...readers.values()].map((r) => r.stats()),
        fetchRequests: settings.counters.fetchRequests,
        fetchResponseBytes: settings.counters.fetchResponseBytes,
        catchUpReadersStarted: settings.counters.catchUpReaders,
      };
    },
    async close() {
      closed = true;
      const all = [...readers.values()];
      readers.clear();
      await Promise.allSettled(
        all.map((r) => r.close(new FanoutClosedError("the gateway is stopping"))),
      );
      // Catch-up readers stopped while starting: their readers are stopped once they exist.
      while (settings.starting.size > 0) await Promise.allSettled([...settings.starting]);
    },
  };
}

interface Settings {
  kafka: Kafka;
  logger: Logger;
  maxLagRecords: number;
  ringMaxBytes: number;
  idleCloseMs: number;
  catchUpBufferRecords: number;
  catchUpFetchBytes: number;
  maxWaitTimeMs: number;
  failAfterMs: number;
  metadataRefreshMs: number;
  counters: {
    fetchRequests: number;
    fetchResponseBytes: number;
    catchUpReaders: number;
  };
  /** Catch-up readers whose partition reader is still starting. */
  starting: Set<Promise<void>>;
}

/**
 * Decides when a reader's problems (which partition-reader.ts works around by retrying)
 * mean giving up: at once for a refusal retrying cannot cure, else once problems kept
 * coming for `failAfterMs` without a Fetch being answered in between.
 */
class FailureWatch {
  private readonly failAfterMs: number;
  private failingSince: number | undefined;

  constructor(failAfterMs: number) {
    this.failAfterMs = failAfterMs;
  }

  /** A Fetch was answered: reading works. */
  answered(): void {
    this.failingSince = undefined;
  }

  /** Whether reading should stop with this problem. */
  givesUp(error: unknown): boolean {
    if (error instanceof KafkaProtocolError && !error.retriable) return true;
    const now = Date.now();
    this.failingSince ??= now;
    return now - this.failingSince >= this.failAfterMs;
  }
}

type Wake = () => void;

/** The shared reader of one topic, its rings and its subscriptions. */
/** Counts one Fetch response in the fan-out's stats; it also proves fetching works again. */
function countFetch(settings: Settings, watch: FailureWatch, responseBytes: number): void {
  settings.counters.fetchRequests++;
  settings.counters.fetchResponseBytes += responseBytes;
  watch.answered();
}

class TopicReader {
  readonly topic: string;
  private readonly settings: Settings;
  private readonly onGone: () => void;
  private readonly logger: Logger;
  readonly rings = new Map<number, PartitionRing<FanoutRecord>>();
  /** Earliest offset per partition when the reader started (where "from earliest" begins). */
  readonly earliest = new Map<number, number>();
  /** High watermark per partition when the reader started (its rings fill up to it first). */
  readonly highWatermarks = new Map<number, number>();
  readonly subscriptions = new Set<Subscription>();
  /** Subscriptions waiting for a record; woken (and removed) on every append. */
  readonly waiting = new Set<Wake>();
  private readonly started: Promise<void>;
  private readonly watch: FailureWatch;
  private readonly cluster: KafkaCluster;
  private reader: PartitionReader | undefined;
  private failure: Error | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(topic: string, settings: Settings, onGone: () => void) {
    this.topic = topic;
    this.settings = settings;
    this.onGone = onGone;
    this.logger = settings.logger.child({ component: "fetch", topic });
    this.watch = new FailureWatch(settings.failAfterMs);
    this.cluster = new KafkaCluster(settings.kafka.wire);
    this.started = this.start();
    // Subscribers see the failure; this only keeps an unobserved rejection quiet.
    this.started.catch(() => {});
  }

  get lagBound(): number {
    return this.settings.maxLagRecords;
  }

  /** How far behind the head a position may be when it joins the live edge. */
  get joinLag(): number {
    return Math.max(1, Math.floor(this.settings.maxLagRecords / 2));
  }

  async subscribe(options: SubscribeOptions): Promise<TopicSubscription> {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const subscription = new Subscription(this, this.settings, options);
    this.subscriptions.add(subscription);
    subscription.listen();
    try {
      await this.started;
      if (this.failure) throw this.failure;
    } catch (error) {
      subscription.close();
      throw error;
    }
    subscription.position(options.resume);
    return subscription;
  }

  /** Whether a partition's position may be served from the ring from now on. */
  canJoin(partition: number, position: number): boolean {
    const ring = this.rings.get(partition);
    if (ring === undefined || position < ring.startOffset) return false;
    const head = Math.max(ring.headOffset, this.highWatermarks.get(partition) ?? 0);
    return head - position <= this.joinLag;
  }

  wakeAll(): void {
    if (this.waiting.size === 0) return;
    const woken = [...this.waiting];
    this.waiting.clear();
    for (const wake of woken) wake();
  }

  release(subscription: Subscription): void {
    if (!this.subscriptions.delete(subscription) || this.subscriptions.size > 0) return;
    if (this.closed) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.subscriptions.size === 0) void this.close(new FanoutClosedError("idle"));
    }, this.settings.idleCloseMs);
    this.idleTimer.unref?.();
  }

  stats(): TopicFanoutStats["topics"][number] {
    let ringRecords = 0;
    let ringBytes = 0;
    for (const ring of this.rings.values()) {
      ringRecords += ring.length;
      ringBytes += ring.bytes;
    }
    let catchUpReaders = 0;
    let catchUpBufferedRecords = 0;
    for (const s of this.subscriptions) {
      if (s.catchingUp) catchUpReaders++;
      catchUpBufferedRecords += s.buffered();
    }
    return {
      topic: this.topic,
      subscriptions: this.subscriptions.size,
      catchUpReaders,
      ringRecords,
      ringBytes,
      catchUpBufferedRecords,
    };
  }

  /** Ends every subscription with `reason` and stops the shared reader. */
  close(reason: Error): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.onGone();
    this.failure ??= reason;
    const failure = this.failure;
    for (const subscription of [...this.subscriptions]) subscription.fail(failure);
    this.wakeAll();
    for (const ring of this.rings.values()) ring.clear();
    this.reader?.stop();
    // Ends the long poll in flight, and a start still under way.
    this.cluster.close();
    this.closing = (async () => {
      await this.started.catch(() => {});
      this.reader?.stop();
      this.logger.debug("fetch shared reader closed", { reason: reason.message });
    })();
    return this.closing;
  }

  private async start(): Promise<void> {
    const { topic } = this;
    try {
      const partitions = (await this.cluster.partitions(topic)).map((p) => p.partition);
      const [low, high] = await Promise.all([
        this.cluster.listOffsets(topic, partitions, -2),
        this.cluster.listOffsets(topic, partitions, -1),
      ]);
      const highs = new Map(high.map((o) => [o.partition, o.offset]));
      const positions = new Map<string, number>();
      for (const { partition, offset: earliest } of low) {
        const highWatermark = highs.get(partition) ?? earliest;
        const start = Math.max(earliest, highWatermark - this.joinLag);
        this.earliest.set(partition, earliest);
        this.highWatermarks.set(partition, highWatermark);
        this.rings.set(
          partition,
          new PartitionRing<FanoutRecord>(this.lagBound, this.settings.ringMaxBytes, start),
        );
        positions.set(`${topic}\0${partition}`, start);
      }
      if (this.closed) return;
      this.reader = await startPartitionReader({
        cluster: this.cluster,
        topics: [topic],
        start: "earliest",
        positions,
        maxWaitMs: this.settings.maxWaitTimeMs,
        partitionMaxBytes: 1024 * 1024,
        maxBytes: 10 * 1024 * 1024,
        metadataRefreshMs: this.settings.metadataRefreshMs,
        onRecords: (_, partition, records) => this.append(partition, records),
        headerBytes: true,
        onFetched: (bytes) => countFetch(this.settings, this.watch, bytes),
        onProblem: (message, error) => this.onProblem(message, error),
        // Held: the partition's calls get nothing past the batch (they wait at that point).
        ...undecodableReporter(this.settings.kafka, `fetch ${topic}`),
      });
    } catch (error) {
      if (this.closed) return;
      const failure = readerErrorFrom(error, `cannot read topic ${topic}`);
      void this.close(failure);
      throw failure;
    }
    if (this.closed) this.reader.stop();
    else this.logger.debug("fetch shared reader started", { partitions: this.rings.size });
  }

  private onProblem(message: string, error: unknown): void {
    if (this.closed) return;
    if (!this.watch.givesUp(error)) {
      this.logger.warn(`fetch shared reader: ${message}`, { error });
      return;
    }
    const failure = readerErrorFrom(error, `reading topic ${this.topic} failed`);
    this.logger.warn("fetch shared reader failed", { error: failure });
    void this.close(failure);
  }

  private append(partition: number, records: FetchedRecord[]): void {
    if (this.closed) return;
    const ring = this.rings.get(partition) ?? this.adopt(partition, records[0]?.offset ?? 0);
    for (const record of records) ring.append(fanoutRecord(partition, record));
    this.wakeAll();
  }

  /**
   * A partition added while the reader runs (the partition reader found it in metadata and
   * reads it from its earliest offset): a ring from there, and open calls read it too.
   */
  private adopt(partition: number, firstOffset: number): PartitionRing<FanoutRecord> {
    const ring = new PartitionRing<FanoutRecord>(
      this.lagBound,
      this.settings.ringMaxBytes,
      firstOffset,
    );
    this.rings.set(partition, ring);
    this.earliest.set(partition, firstOffset);
    this.logger.info("fetch shared reader reads a new partition", { partition });
    for (const subscription of this.subscriptions) subscription.adopt(partition, ring);
    return ring;
  }
}

/** A partition of one subscription: where it stands and where its records come from. */
interface Cursor {
  partition: number;
  /** Next offset this call reads (the position after the last record it was given). */
  position: number;
  /** Live: the ring sequence number of the next record; catching up: `undefined`. */
  seq: number | undefined;
  /** Catching up: records fetched by the call's own reader, not yet read. */
  queue: FanoutRecord[];
  queueHead: number;
}

class Subscription implements TopicSubscription {
  private readonly reader: TopicReader;
  private readonly settings: Settings;
  private readonly signal: AbortSignal;
  private readonly cursors: Cursor[] = [];
  private nextCursor = 0;
  private catchUp: CatchUpReader | undefined;
  private failure: Error | undefined;
  private closed = false;
  /** Whether `position` ran (cursors exist for the partitions known then). */
  private positioned = false;
  private wake: Wake | undefined;
  private readonly onAbort = () => this.close();

  constructor(reader: TopicReader, settings: Settings, options: SubscribeOptions) {
    this.reader = reader;
    this.settings = settings;
    this.signal = options.signal;
  }

  /** Starts following the call's signal (after the reader counted this subscription). */
  listen(): void {
    if (this.signal.aborted) this.close();
    else this.signal.addEventListener("abort", this.onAbort, { once: true });
  }

  get catchingUp(): boolean {
    return this.catchUp !== undefined;
  }

  /** Sets the starting positions (once the reader knows its partitions). */
  position(resume: ReadonlyMap<number, number> | undefined): void {
    this.positioned = true;
    const behind: Cursor[] = [];
    for (const partition of [...this.reader.rings.keys()].sort((a, b) => a - b)) {
      const position = resume?.get(partition) ?? this.reader.earliest.get(partition) ?? 0;
      const cursor: Cursor = { partition, position, seq: undefined, queue: [], queueHead: 0 };
      this.cursors.push(cursor);
      if (!this.tryJoin(cursor)) behind.push(cursor);
    }
    if (behind.length > 0 && !this.closed) {
      this.catchUp = new CatchUpReader(this.reader.topic, this.settings, this, behind);
    }
  }

  /** A partition new to the reader: read at the live edge from the start of its ring. */
  adopt(partition: number, ring: PartitionRing<FanoutRecord>): void {
    if (!this.positioned || this.closed) return;
    if (this.cursors.some((c) => c.partition === partition)) return;
    const cursor: Cursor = {
      partition,
      position: ring.startOffset,
      seq: ring.firstSeq,
      queue: [],
      queueHead: 0,
    };
    const at = this.cursors.findIndex((c) => c.partition > partition);
    if (at < 0) this.cursors.push(cursor);
    else this.cursors.splice(at, 0, cursor);
  }

  positions(): Array<[number, number]> {
    return this.cursors.map((c) => [c.partition, c.position]);
  }

  async next(): Promise<FanoutRecord | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.closed) return undefined;
      const record = this.take();
      if (record) return record;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.reader.waiting.add(resolve);
      });
      this.wake = undefined;
    }
  }

  /** Called by the catch-up reader when it queued records. */
  notify(): void {
    const wake = this.wake;
    if (wake === undefined) return;
    this.reader.waiting.delete(wake);
    wake();
  }

  /** Records queued for a catching-up partition (for the catch-up reader's pause rule). */
  queued(partition: number): number {
    const cursor = this.cursors.find((c) => c.partition === partition);
    return cursor ? cursor.queue.length - cursor.queueHead : 0;
  }

  /** Records queued by the catch-up reader, all partitions. */
  buffered(): number {
    let total = 0;
    for (const cursor of this.cursors) total += cursor.queue.length - cursor.queueHead;
    return total;
  }

  /** Queues a record fetched by this subscription's catch-up reader. */
  enqueue(record: FanoutRecord): void {
    const cursor = this.cursors.find((c) => c.partition === record.partition);
    if (cursor === undefined || cursor.seq !== undefined) return;
    cursor.queue.push(record);
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.close();
  }

  close(): void {
    if (this.closed) {
      this.notify();
      return;
    }
    this.closed = true;
    this.signal.removeEventListener("abort", this.onAbort);
    this.catchUp?.stop();
    this.catchUp = undefined;
    for (const cursor of this.cursors) cursor.queue = [];
    this.reader.release(this);
    this.notify();
  }

  /** The next available record, round-robin across partitions, or `undefined`. */
  private take(): FanoutRecord | undefined {
    const count = this.cursors.length;
    // Check every live partition first: a call that fell off the ring ends now, not after
    // it has drained the partitions that still have records.
    for (const cursor of this.cursors) {
      if (cursor.seq === undefined) continue;
      const ring = this.reader.rings.get(cursor.partition);
      if (ring && cursor.seq < ring.firstSeq) {
        this.failure = new FanoutLagError(
          `fell more than ${this.reader.lagBound} records behind partition ${cursor.partition} of ${this.reader.topic}`,
        );
        throw this.failure;
      }
    }
    for (let i = 0; i < count; i++) {
      const cursor = this.cursors[(this.nextCursor + i) % count];
      if (cursor === undefined) continue;
      const record = cursor.seq === undefined ? this.takeQueued(cursor) : this.takeLive(cursor);
      if (record) {
        this.nextCursor = (this.nextCursor + i + 1) % count;
        return record;
      }
    }
    return undefined;
  }

  private takeLive(cursor: Cursor): FanoutRecord | undefined {
    const ring = this.reader.rings.get(cursor.partition);
    if (ring === undefined || cursor.seq === undefined) return undefined;
    for (;;) {
      const record = ring.at(cursor.seq);
      if (record === undefined) return undefined;
      cursor.seq++;
      // A resume position ahead of what the ring had when the call joined.
      if (record.offset < cursor.position) continue;
      cursor.position = record.offset + 1;
      return record;
    }
  }

  private takeQueued(cursor: Cursor): FanoutRecord | undefined {
    if (this.tryJoin(cursor)) return this.takeLive(cursor);
    while (cursor.queueHead < cursor.queue.length) {
      const record = cursor.queue[cursor.queueHead];
      cursor.queue[cursor.queueHead++] = undefined as unknown as FanoutRecord;
      if (cursor.queueHead > 256 && cursor.queueHead * 2 > cursor.queue.length) {
        cursor.queue = cursor.queue.slice(cursor.queueHead);
        cursor.queueHead = 0;
      }
      if (record === undefined || record.offset < cursor.position) continue;
      cursor.position = record.offset + 1;
      this.catchUp?.drained(cursor.partition);
      return record;
    }
    return undefined;
  }

  /** Moves a catching-up partition to the live edge when the ring can serve it. */
  private tryJoin(cursor: Cursor): boolean {
    if (!this.reader.canJoin(cursor.partition, cursor.position)) return false;
    const ring = this.reader.rings.get(cursor.partition);
    const seq = ring?.seqAt(cursor.position);
    if (seq === undefined) return false;
    cursor.seq = seq;
    cursor.queue = [];
    cursor.queueHead = 0;
    if (this.catchUp?.release(cursor.partition) === 0) this.catchUp = undefined;
    return true;
  }
}

/** One subscription's own reader for the partitions it must catch up on. */
class CatchUpReader {
  private readonly topic: string;
  private readonly settings: Settings;
  private readonly subscription: Subscription;
  /** Partitions still caught up here (not yet joined the live edge). */
  private readonly active = new Set<number>();
  /** Partitions paused because the call's buffer for them is full. */
  private readonly full = new Set<number>();
  private readonly cluster: KafkaCluster;
  private readonly watch: FailureWatch;
  private reader: PartitionReader | undefined;
  private stopped = false;

  constructor(topic: string, settings: Settings, subscription: Subscription, cursors: Cursor[]) {
    this.topic = topic;
    this.settings = settings;
    this.subscription = subscription;
    settings.counters.catchUpReaders++;
    this.watch = new FailureWatch(settings.failAfterMs);
    this.cluster = new KafkaCluster(settings.kafka.wire);
    const positions = new Map<string, number>();
    for (const cursor of cursors) {
      this.active.add(cursor.partition);
      positions.set(`${topic}\0${cursor.partition}`, cursor.position);
    }
    const starting = startPartitionReader({
      cluster: this.cluster,
      topics: [topic],
      assigned: cursors.map((c) => ({ topic, partition: c.partition })),
      // Where a position is gone (retention), reading goes on from what is left.
      start: "earliest",
      positions,
      // A resumed partition waits for the fetch in flight for the others: keep it short.
      maxWaitMs: Math.min(settings.maxWaitTimeMs, 100),
      partitionMaxBytes: settings.catchUpFetchBytes,
      maxBytes: settings.catchUpFetchBytes,
      onRecords: (_, partition, records) => this.append(partition, records),
      headerBytes: true,
      onFetched: (bytes) => countFetch(this.settings, this.watch, bytes),
      onProblem: (message, error) => this.onProblem(message, error),
      ...undecodableReporter(settings.kafka, `fetch ${topic} catch-up`),
    }).then(
      (reader) => {
        if (this.stopped) {
          reader.stop();
          return;
        }
        this.reader = reader;
        // Partitions that joined the live edge or filled up while the reader was starting.
        const paused = cursors
          .filter((c) => this.full.has(c.partition) || !this.active.has(c.partition))
          .map((c) => ({ topic, partition: c.partition }));
        if (paused.length > 0) reader.pause(paused);
      },
      (error: unknown) => {
        if (!this.stopped) subscription.fail(readerErrorFrom(error, `cannot catch up on ${topic}`));
      },
    );
    settings.starting.add(starting);
    void starting.finally(() => settings.starting.delete(starting));
  }

  /** The call read a queued record of `partition`: resume it once half its buffer is free. */
  drained(partition: number): void {
    if (!this.full.has(partition) || !this.active.has(partition)) return;
    if (this.subscription.queued(partition) > this.settings.catchUpBufferRecords / 2) return;
    this.full.delete(partition);
    this.reader?.resume([{ topic: this.topic, partition }]);
  }

  /** `partition` joined the live edge; returns how many partitions are still caught up here. */
  release(partition: number): number {
    if (this.active.delete(partition)) {
      this.full.delete(partition);
      if (!this.stopped) this.reader?.pause([{ topic: this.topic, partition }]);
    }
    if (this.active.size === 0) this.stop();
    return this.active.size;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.reader?.stop();
    // Ends the fetch in flight (and a start still under way) with the connections.
    this.cluster.close();
  }

  private onProblem(message: string, error: unknown): void {
    if (this.stopped) return;
    if (!this.watch.givesUp(error)) {
      this.settings.logger.warn(`fetch catch-up reader: ${message}`, { topic: this.topic, error });
      return;
    }
    this.subscription.fail(readerErrorFrom(error, `catching up on ${this.topic} failed`));
  }

  private append(partition: number, records: FetchedRecord[]): void {
    if (this.stopped || !this.active.has(partition)) return;
    for (const record of records) this.subscription.enqueue(fanoutRecord(partition, record));
    if (this.subscription.queued(partition) >= this.settings.catchUpBufferRecords) {
      this.full.add(partition);
      this.reader?.pause([{ topic: this.topic, partition }]);
    }
    this.subscription.notify();
  }
}

const noHeaders: FanoutRecord["headers"] = [];

/**
 * A fetched record as a FanoutRecord. Key, value and header values are copied: they are
 * views into the whole Fetch response, which a ring holding one record would otherwise keep
 * alive. Header values are the bytes on the wire, so the route's filters compare exactly.
 */
function fanoutRecord(partition: number, record: FetchedRecord): FanoutRecord {
  const key = record.key === null ? null : record.key.slice();
  const value = record.value === null ? null : record.value.slice();
  let size = 64 + (key?.length ?? 0) + (value?.length ?? 0);
  let headers = noHeaders;
  const raw = record.headerBytes ?? [];
  if (raw.length > 0) {
    const list: Array<readonly [string, Uint8Array]> = [];
    for (const [name, bytes] of raw) {
      list.push([name, bytes.slice()]);
      size += name.length + bytes.length;
    }
    headers = list;
  }
  return { partition, offset: record.offset, key, value, headers, size };
}

/** The partition reader option reporting undecodable batches, when the gateway watches them. */
function undecodableReporter(kafka: Kafka, reader: string) {
  return kafka.undecodable ? { undecodable: kafka.undecodable.reporter(reader) } : {};
}

/** A reader failure as a FanoutReaderError, looking through wrappers for the cause. */
function readerErrorFrom(error: unknown, context: string): FanoutReaderError {
  if (error instanceof FanoutReaderError) return error;
  const unreachable = isKafkaUnreachable(error);
  const message = error instanceof Error ? error.message : String(error);
  return new FanoutReaderError(`${context}: ${message}`, unreachable, error);
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}
