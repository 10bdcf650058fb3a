/**
 * Topic fan-out for the fetch capability (SPEC §7): many concurrent calls read the same
 * topic, each at its own position, without each holding a copy of the topic or fetching the
 * same bytes from the broker again.
 *
 * Design
 * - One shared reader per topic: a kafkajs consumer in a group of its own (kafkajs needs a
 *   group; the id is unique to this process and the group is deleted on close; nothing is
 *   ever committed). After every group join it seeks each partition to where its ring ends,
 *   so a rebalance or a consumer restart neither skips nor repeats records.
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
 *   behind the head, catches up with a short-lived reader of its own (another consumer in
 *   a group of its own) that buffers at most `catchUpBufferRecords` per partition, pausing
 *   the partition when the call does not keep up. Once a partition's position is within
 *   half the lag bound of the head and inside the ring, that partition joins the live edge;
 *   when every partition has, the catch-up reader is closed. The half-bound margin keeps a
 *   call that just joined from being evicted by the next record.
 * - When a topic's shared reader starts, its rings begin at max(earliest, high watermark −
 *   half the lag bound), so it never reads deep history that no live call needs.
 * - A topic's shared reader closes `idleCloseMs` after its last subscription left.
 *
 * Not handled: partitions added to a topic while its shared reader runs are not read until
 * that reader restarts (the next time the topic is idle).
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import process from "node:process";
import type { Admin, Batch, Consumer, IHeaders, Kafka } from "kafkajs";
import type { Logger } from "../ops/logger.ts";
import { isKafkaUnreachable } from "./kafka-error.ts";
import { PartitionRing } from "./partition-ring.ts";

/** One record as the fetch capability sees it (bytes copied out of kafkajs' fetch buffers). */
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
   * fetches in flight when it pauses (kafkajs fetches ahead) add a few `catchUpFetchBytes`.
   */
  catchUpBufferRecords?: number;
  /** Most bytes one catch-up fetch returns per partition (default 1 MiB). */
  catchUpFetchBytes?: number;
  /** Longest one fetch waits at the broker for new records. */
  maxWaitTimeMs?: number;
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
  /** Fetch requests sent to the cluster by shared and catch-up readers since creation. */
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
    // Unique per process and per fan-out, so that no two gateways share a reader's group.
    groupPrefix: `zilla-fetch-${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`,
    counters: { fetchRequests: 0, fetchResponseBytes: 0, groups: 0, catchUpReaders: 0 },
    admin: undefined,
    retiring: new Set(),
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
      // Catch-up readers retire in the background; their group deletions need the admin.
      while (settings.retiring.size > 0) await Promise.allSettled([...settings.retiring]);
      const admin = settings.admin;
      settings.admin = undefined;
      if (admin) await (await admin).disconnect().catch(() => {});
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
  groupPrefix: string;
  counters: {
    fetchRequests: number;
    fetchResponseBytes: number;
    groups: number;
    catchUpReaders: number;
  };
  /** One admin client, for offsets and group deletion. */
  admin: Promise<Admin> | undefined;
  /** Readers being disconnected and their groups deleted. */
  retiring: Set<Promise<void>>;
}

function adminOf(settings: Settings): Promise<Admin> {
  if (settings.admin === undefined) {
    const admin = settings.kafka.admin();
    const connected = admin.connect().then(() => admin);
    // A failed connect must not poison every later call.
    connected.catch(() => {
      if (settings.admin === connected) settings.admin = undefined;
    });
    settings.admin = connected;
  }
  return settings.admin;
}

/** A consumer in a fresh group of its own, counting its fetches. */
function createGroupConsumer(
  settings: Settings,
  topic: string,
  role: "live" | "catch-up",
): { consumer: Consumer; groupId: string } {
  const groupId = `${settings.groupPrefix}-${topic}-${role}-${++settings.counters.groups}`;
  const consumer = settings.kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: settings.maxWaitTimeMs,
    ...(role === "catch-up"
      ? {
          // What the fetches in flight when it pauses bring is a catch-up reader's overshoot.
          maxBytesPerPartition: settings.catchUpFetchBytes,
          maxBytes: settings.catchUpFetchBytes,
          // kafkajs sleeps this long when every partition is paused, and a resume does not
          // cut the sleep short: keep it short so that a resumed call is not stalled.
          maxWaitTimeInMs: Math.min(settings.maxWaitTimeMs, 100),
        }
      : {}),
  });
  consumer.on(consumer.events.REQUEST, (event) => {
    if (event.payload.apiName === "Fetch") {
      settings.counters.fetchRequests++;
      settings.counters.fetchResponseBytes += event.payload.size;
    }
  });
  return { consumer, groupId };
}

/** Leaves and deletes a reader's group; failures only leave an empty group behind. */
function retireConsumer(settings: Settings, consumer: Consumer, groupId: string): Promise<void> {
  const retired = (async () => {
    await consumer.disconnect().catch(() => {});
    try {
      const admin = await adminOf(settings);
      await admin.deleteGroups([groupId]);
    } catch (error) {
      settings.logger.debug("fetch reader group not deleted", { groupId, error });
    }
  })();
  settings.retiring.add(retired);
  void retired.finally(() => settings.retiring.delete(retired));
  return retired;
}

type Wake = () => void;

/** The shared reader of one topic, its rings and its subscriptions. */
class TopicReader {
  readonly topic: string;
  private readonly settings: Settings;
  private readonly onGone: () => void;
  private readonly logger: Logger;
  readonly rings = new Map<number, PartitionRing<FanoutRecord>>();
  /** Earliest offset per partition when the reader started (where "from earliest" begins). */
  readonly earliest = new Map<number, number>();
  /** Highest high watermark seen per partition. */
  readonly highWatermarks = new Map<number, number>();
  readonly subscriptions = new Set<Subscription>();
  /** Subscriptions waiting for a record; woken (and removed) on every append. */
  readonly waiting = new Set<Wake>();
  private readonly started: Promise<void>;
  private consumer: Consumer | undefined;
  private groupId = "";
  private failure: Error | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(topic: string, settings: Settings, onGone: () => void) {
    this.topic = topic;
    this.settings = settings;
    this.onGone = onGone;
    this.logger = settings.logger.child({ component: "fetch", topic });
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
    this.closing = (async () => {
      await this.started.catch(() => {});
      if (this.consumer) await retireConsumer(this.settings, this.consumer, this.groupId);
      this.logger.debug("fetch shared reader closed", { reason: reason.message });
    })();
    return this.closing;
  }

  private async start(): Promise<void> {
    let offsets: Array<{ partition: number; high: string; low: string }>;
    try {
      const admin = await adminOf(this.settings);
      offsets = await admin.fetchTopicOffsets(this.topic);
    } catch (error) {
      const failure = readerErrorFrom(error, `cannot read topic ${this.topic}`);
      this.failure = failure;
      void this.close(failure);
      throw failure;
    }
    for (const { partition, high, low } of offsets) {
      const earliest = Number(low);
      const start = Math.max(earliest, Number(high) - this.joinLag);
      this.earliest.set(partition, earliest);
      this.highWatermarks.set(partition, Number(high));
      this.rings.set(
        partition,
        new PartitionRing<FanoutRecord>(this.lagBound, this.settings.ringMaxBytes, start),
      );
    }
    const { consumer, groupId } = createGroupConsumer(this.settings, this.topic, "live");
    this.consumer = consumer;
    this.groupId = groupId;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      // Position every partition where its ring ends: whatever kafkajs would start from
      // (earliest, for a fresh group) is not where this reader stands.
      for (const partition of event.payload.memberAssignment[this.topic] ?? []) {
        const ring = this.rings.get(partition);
        if (ring) consumer.seek({ topic: this.topic, partition, offset: String(ring.headOffset) });
      }
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) return;
      const failure = readerErrorFrom(event.payload.error, `reading topic ${this.topic} failed`);
      this.logger.warn("fetch shared reader failed", { error: failure });
      void this.close(failure);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => this.append(batch),
      });
    } catch (error) {
      const failure = readerErrorFrom(error, `cannot read topic ${this.topic}`);
      void this.close(failure);
      throw failure;
    }
    this.logger.debug("fetch shared reader started", { groupId: this.groupId });
  }

  private append(batch: Batch): void {
    const ring = this.rings.get(batch.partition);
    if (ring === undefined || this.closed) return;
    const highWatermark = Number(batch.highWatermark);
    if (highWatermark > (this.highWatermarks.get(batch.partition) ?? 0)) {
      this.highWatermarks.set(batch.partition, highWatermark);
    }
    for (const message of batch.messages) {
      ring.append(recordFromKafka(batch.partition, message));
    }
    this.wakeAll();
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
  /** Partition → the offset after the last record queued (where to fetch next). */
  private readonly wanted = new Map<number, number>();
  private readonly paused = new Set<number>();
  private readonly consumer: Consumer;
  private readonly groupId: string;
  private running = false;
  private stopped = false;
  private readonly ran: Promise<void>;

  constructor(topic: string, settings: Settings, subscription: Subscription, cursors: Cursor[]) {
    this.topic = topic;
    this.settings = settings;
    this.subscription = subscription;
    for (const cursor of cursors) this.wanted.set(cursor.partition, cursor.position);
    settings.counters.catchUpReaders++;
    const { consumer, groupId } = createGroupConsumer(settings, topic, "catch-up");
    this.consumer = consumer;
    this.groupId = groupId;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      for (const partition of event.payload.memberAssignment[topic] ?? []) {
        const from = this.wanted.get(partition);
        if (from !== undefined) consumer.seek({ topic, partition, offset: String(from) });
        // Released to the live edge, or its buffer is full (a restart forgets pauses).
        if (from === undefined || this.paused.has(partition)) {
          consumer.pause([{ topic, partitions: [partition] }]);
        }
      }
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart || this.stopped) return;
      subscription.fail(readerErrorFrom(event.payload.error, `catching up on ${topic} failed`));
    });
    this.ran = (async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => this.append(batch) });
      this.running = true;
      // Partitions that joined the live edge or filled up while the consumer was starting.
      if (this.stopped) return;
      for (const partition of this.paused) consumer.pause([{ topic, partitions: [partition] }]);
    })().catch((error: unknown) => {
      if (!this.stopped) subscription.fail(readerErrorFrom(error, `cannot catch up on ${topic}`));
    });
  }

  /** The call read a queued record of `partition`: resume it once half its buffer is free. */
  drained(partition: number): void {
    if (!this.paused.has(partition) || !this.wanted.has(partition)) return;
    if (this.subscription.queued(partition) > this.settings.catchUpBufferRecords / 2) return;
    this.paused.delete(partition);
    if (this.running) this.consumer.resume([{ topic: this.topic, partitions: [partition] }]);
  }

  /** `partition` joined the live edge; returns how many partitions are still caught up here. */
  release(partition: number): number {
    if (this.wanted.delete(partition)) {
      this.paused.add(partition);
      if (this.running && !this.stopped) {
        this.consumer.pause([{ topic: this.topic, partitions: [partition] }]);
      }
    }
    if (this.wanted.size === 0) this.stop();
    return this.wanted.size;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const retired = this.ran.then(() => retireConsumer(this.settings, this.consumer, this.groupId));
    // Counted at once, so that closing the fan-out waits for a reader still starting.
    this.settings.retiring.add(retired);
    void retired.finally(() => this.settings.retiring.delete(retired));
  }

  private append(batch: Batch): void {
    if (this.stopped) return;
    const { partition } = batch;
    const from = this.wanted.get(partition);
    if (from === undefined) return;
    let next = from;
    for (const message of batch.messages) {
      const record = recordFromKafka(partition, message);
      if (record.offset < next) continue;
      this.subscription.enqueue(record);
      next = record.offset + 1;
    }
    this.wanted.set(partition, next);
    if (this.subscription.queued(partition) >= this.settings.catchUpBufferRecords) {
      this.paused.add(partition);
      this.consumer.pause([{ topic: this.topic, partitions: [partition] }]);
    }
    this.subscription.notify();
  }
}

/** A kafkajs message as a FanoutRecord, copying its bytes out of the shared fetch buffer. */
function recordFromKafka(partition: number, message: Batch["messages"][number]): FanoutRecord {
  // kafkajs slices values out of the whole Fetch response; a copy lets that buffer go.
  const key = message.key ? new Uint8Array(message.key) : null;
  const value = message.value ? new Uint8Array(message.value) : null;
  const headers = headerList(message.headers);
  let size = 64 + (key?.length ?? 0) + (value?.length ?? 0);
  for (const [name, v] of headers) size += name.length + v.length;
  return { partition, offset: Number(message.offset), key, value, headers, size };
}

function headerList(headers: IHeaders | undefined): Array<readonly [string, Uint8Array]> {
  const out: Array<readonly [string, Uint8Array]> = [];
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      out.push([name, typeof v === "string" ? new TextEncoder().encode(v) : new Uint8Array(v)]);
    }
  }
  return out;
}

/** A kafkajs failure as a FanoutReaderError, looking through retry wrappers for the cause. */
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
