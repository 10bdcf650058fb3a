/**
 * Which partitions of its reply topics a north instance reads, and from where (docs/scaling.md
 * walks through it). A partition is read while the instance owns it, while one of its calls
 * waits for a reply there (a reference count), for a short linger after the last such call,
 * and on every instance for a grace period after the topic gained partitions.
 *
 * The rule that keeps every reply: a partition that starts being read starts at an offset
 * taken from the broker *before* anything that needs it happened — the end offsets of every
 * partition, listed at start and again at each check (every few seconds). A call registers
 * (and so starts its partition) before its first request record leaves, and its replies are
 * produced after west read that request, so they lie past that offset. Starting there costs
 * a few seconds of records that nobody waits for, and makes starting a partition synchronous:
 * no call waits for a ListOffsets. Who owns what may change at any moment (instances join,
 * leave, crash): ownership only decides where new correlation ids go.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../ops/logger.ts";
import type { KafkaCluster } from "./client/kafka-cluster.ts";
import type { PartitionReader } from "./client/partition-reader.ts";
import { placeUuid } from "./correlation-placement.ts";
import { partitionOfKey } from "./murmur2-partitioner.ts";

/** Where each partition of one reply topic stands. */
interface TopicPartitions {
  readonly topic: string;
  /** Partitions known; ids are placed among this many. */
  count: number;
  /** 1 = owned (and read): new correlation ids are placed here. */
  owned: Uint8Array;
  ownedCount: number;
  /** 1 = read. */
  read: Uint8Array;
  readCount: number;
  /** Ownership asked for, whether the partitions exist yet or not. */
  asked: readonly number[];
  /** The partitions of `asked` that exist. */
  wanted: Set<number>;
  /** Calls waiting per partition. */
  refs: number[];
  /** When each partition was last needed (ms), for the linger. */
  idleSince: number[];
  /** Per partition, an offset no later than its end when the last check started. */
  snapshot: number[];
  /** Per partition, where reading it stopped last (-1: never), so that it is not read twice. */
  stoppedAt: number[];
  /** Every partition is read until then (the topic gained partitions). */
  graceUntil: number;
  checking: boolean;
}

export interface ReplyPartitionSetOptions {
  cluster: KafkaCluster;
  /** A reader started with no partitions (`assigned: []`); this set adds and removes them. */
  reader: PartitionReader;
  topics: readonly string[];
  logger: Logger;
  /** all: own every partition, now and later (ids need no placing); owned: what `setOwned` says. */
  mode: "all" | "owned";
  /** How long a partition nobody needs any more is still read (default 2 s). */
  lingerMs?: number;
  /** How long every partition is read after a topic gained partitions (default 10 min). */
  graceMs?: number;
  /** How often end offsets and partition counts are read (default 5 s). */
  checkMs?: number;
  /** `topic` gained partitions (after they are read). */
  onGrown?(topic: string): void;
}

export interface ReplyPartitionStats {
  topic: string;
  count: number;
  read: number[];
  owned: number[];
}

export interface ReplyPartitionSet {
  /** Chooses the UUID of new ids on `topic`; undefined when any UUID does (mode all). */
  uuidChooser(topic: string): ((digest: string) => string) | undefined;
  /** A call waits for replies keyed `key` on `topic`: its partition is read until `release`. */
  acquire(topic: string, key: Uint8Array): number;
  /** The call that acquired `partition` is done. */
  release(topic: string, partition: number): void;
  /** Owns exactly these partitions of `topic` from now on (they are read at once). */
  setOwned(topic: string, partitions: readonly number[]): void;
  /** Partitions read and owned, per topic (metrics, tests). */
  stats(): ReplyPartitionStats[];
  close(): void;
}

/** Lists where every partition starts, then keeps the set up to date. */
export async function startReplyPartitionSet(
  options: ReplyPartitionSetOptions,
): Promise<ReplyPartitionSet> {
  const { cluster, reader, logger, mode } = options;
  const lingerMs = options.lingerMs ?? 2_000;
  const graceMs = options.graceMs ?? 10 * 60_000;
  const checkMs = options.checkMs ?? 5_000;
  const topics = new Map<string, TopicPartitions>();
  let closed = false;

  const endOffsets = async (topic: string, count: number): Promise<number[]> => {
    const offsets = new Array<number>(count).fill(0);
    for (const o of await cluster.listOffsets(topic, range(0, count), -1)) {
      offsets[o.partition] = o.offset;
    }
    return offsets;
  };

  for (const topic of options.topics) {
    const partitions = await cluster.partitionsWithin(
      topic,
      Date.now() + cluster.settings.retryTimeoutMs,
    );
    const count = partitions.length;
    topics.set(topic, {
      topic,
      count,
      owned: new Uint8Array(count),
      ownedCount: 0,
      read: new Uint8Array(count),
      readCount: 0,
      asked: [],
      wanted: new Set(),
      refs: new Array<number>(count).fill(0),
      idleSince: new Array<number>(count).fill(0),
      // This instance takes no call before this moment.
      snapshot: await endOffsets(topic, count),
      stoppedAt: new Array<number>(count).fill(-1),
      graceUntil: 0,
      checking: false,
    });
  }

  const topicOf = (topic: string): TopicPartitions => {
    const t = topics.get(topic);
    if (!t) throw new Error(`reply topic ${topic} is not read by this north instance`);
    return t;
  };

  /** Starts reading those of `partitions` not read yet. */
  const readFrom = (t: TopicPartitions, partitions: Iterable<number>): void => {
    const now = Date.now();
    const added: { topic: string; partition: number; offset: number }[] = [];
    for (const p of partitions) {
      if (t.read[p] === 1) continue;
      t.read[p] = 1;
      t.readCount++;
      t.idleSince[p] = now;
      const offset = Math.max(t.snapshot[p] as number, t.stoppedAt[p] as number);
      added.push({ topic: t.topic, partition: p, offset });
    }
    if (added.length > 0 && !closed) reader.add(added);
  };

  const setOwned = (t: TopicPartitions, partitions: readonly number[]): void => {
    t.asked = partitions;
    t.wanted = new Set(partitions.filter((p) => Number.isInteger(p) && p >= 0 && p < t.count));
    const now = Date.now();
    for (let p = 0; p < t.count; p++) {
      if (t.owned[p] === 1 && !t.wanted.has(p)) {
        t.owned[p] = 0;
        t.ownedCount--;
        // Ids placed here a moment ago may not be registered yet: they get the linger.
        t.idleSince[p] = now;
      }
    }
    readFrom(t, t.wanted);
    for (const p of t.wanted) {
      if (t.owned[p] === 1) continue;
      t.owned[p] = 1;
      t.ownedCount++;
    }
  };

  /** `t` has `count` partitions now; `earliest` holds where each new one begins. */
  const grow = (t: TopicPartitions, count: number, earliest: readonly number[]): void => {
    const old = t.count;
    logger.info("reply topic gained partitions", {
      topic: t.topic,
      from: old,
      to: count,
      ...(mode === "owned" ? { readAllForMs: graceMs } : {}),
    });
    const owned = new Uint8Array(count);
    owned.set(t.owned);
    const read = new Uint8Array(count);
    read.set(t.read);
    t.owned = owned;
    t.read = read;
    for (let p = old; p < count; p++) {
      t.refs.push(0);
      t.idleSince.push(0);
      t.snapshot.push(earliest[p - old] ?? 0);
      t.stoppedAt.push(-1);
    }
    t.count = count;
    if (mode === "all") {
      setOwned(t, range(0, count));
      return;
    }
    // Replies for ids placed among the old count may now go to any partition (producers
    // learn the new count at their next metadata refresh): read them all for a while, the
    // old ones from the snapshot taken before the count last checked out unchanged.
    t.graceUntil = Date.now() + graceMs;
    readFrom(t, range(0, count));
    // A fixed list may name partitions that exist only now.
    setOwned(t, t.asked);
  };

  /** Reads end offsets (the next snapshot), then the partition count. */
  const check = async (t: TopicPartitions): Promise<void> => {
    if (t.checking || closed) return;
    t.checking = true;
    try {
      const fresh = mode === "owned" ? await endOffsets(t.topic, t.count) : undefined;
      // Twice: a refresh under way (perhaps asked before the offsets) is shared by the first
      // call; the second surely asks after them.
      await cluster.refresh([t.topic]);
      await cluster.refresh([t.topic]);
      const count = (await cluster.partitions(t.topic)).length;
      if (count > t.count && !closed) {
        const begins = await cluster.listOffsets(t.topic, range(t.count, count), -2);
        const earliest = range(t.count, count).map(
          (p) => begins.find((o) => o.partition === p)?.offset ?? 0,
        );
        grow(t, count, earliest);
        options.onGrown?.(t.topic);
      }
      // After grow: it needs the snapshot taken before the count changed.
      if (fresh) for (let p = 0; p < fresh.length; p++) t.snapshot[p] = fresh[p] as number;
    } catch (error) {
      logger.debug("reply partition check failed", { topic: t.topic, error });
    } finally {
      t.checking = false;
    }
  };

  /** Stops reading what nobody needs any more. */
  const sweep = (): void => {
    if (mode === "all") return;
    const now = Date.now();
    let positions: Map<string, number> | undefined;
    for (const t of topics.values()) {
      if (now < t.graceUntil) continue;
      const idle: { topic: string; partition: number }[] = [];
      for (let p = 0; p < t.count; p++) {
        if (t.read[p] === 0 || t.refs[p] !== 0 || t.owned[p] === 1) continue;
        if (now - (t.idleSince[p] as number) < lingerMs) continue;
        positions ??= reader.positions();
        t.stoppedAt[p] = positions.get(`${t.topic}\0${p}`) ?? -1;
        t.read[p] = 0;
        t.readCount--;
        idle.push({ topic: t.topic, partition: p });
      }
      if (idle.length > 0) reader.remove(idle);
    }
  };

  const sweeper = setInterval(sweep, Math.max(50, Math.min(1_000, lingerMs / 2)));
  sweeper.unref?.();
  const checker = setInterval(() => {
    for (const t of topics.values()) void check(t);
  }, checkMs);
  checker.unref?.();

  // One chooser per topic, made once: calls look it up rather than build one.
  const choosers = new Map<string, (digest: string) => string>();
  for (const t of topics.values()) {
    choosers.set(t.topic, (digest) => {
      if (t.ownedCount === t.count) return randomUUID();
      // Owning nothing (more instances than partitions): a partition read anyway will do.
      const mask = t.ownedCount > 0 ? t.owned : t.readCount > 0 ? t.read : undefined;
      return (mask && placeUuid(digest, t.count, mask)?.uuid) ?? randomUUID();
    });
  }

  if (mode === "all") for (const t of topics.values()) setOwned(t, range(0, t.count));

  return {
    uuidChooser(topic) {
      return mode === "all" ? undefined : choosers.get(topic);
    },
    acquire(topic, key) {
      const t = topicOf(topic);
      const p = partitionOfKey(key, t.count);
      t.refs[p] = (t.refs[p] as number) + 1;
      if (t.read[p] === 0) readFrom(t, [p]);
      return p;
    },
    release(topic, partition) {
      const t = topicOf(topic);
      const left = (t.refs[partition] as number) - 1;
      t.refs[partition] = left;
      if (left === 0) t.idleSince[partition] = Date.now();
    },
    setOwned(topic, partitions) {
      setOwned(topicOf(topic), partitions);
    },
    stats() {
      return [...topics.values()].map((t) => ({
        topic: t.topic,
        count: t.count,
        read: range(0, t.count).filter((p) => t.read[p] === 1),
        owned: range(0, t.count).filter((p) => t.owned[p] === 1),
      }));
    },
    close() {
      closed = true;
      clearInterval(sweeper);
      clearInterval(checker);
    },
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
