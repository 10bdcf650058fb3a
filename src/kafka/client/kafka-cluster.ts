/**
 * The gateway's own Kafka client for its hot path: cluster metadata (brokers, partition
 * leaders), a connection per broker and purpose, Produce to partition leaders with retries,
 * ListOffsets, and Fetch requests for assigned partitions (partition-reader.ts drives them).
 *
 * Why not kafkajs here: per call, kafkajs spent 640–860 µs of CPU on a produce/consume
 * round trip where this code spends about a quarter of that (bench/profile/). kafkajs keeps
 * what it is good at: consumer-group membership and admin requests.
 *
 * Versions are negotiated per broker (ApiVersions) inside the non-flexible ranges every
 * Kafka since 2.1 and every Kafka-compatible broker the gateway targets speaks: Produce
 * 3–8, Fetch 4–11, ListOffsets 1–5, Metadata 1–8.
 */

import { murmur2 } from "../murmur2-partitioner.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import {
  isRetriableCode,
  KafkaConnectionError,
  KafkaProtocolError,
  kafkaCodeName,
} from "../protocol/errors.ts";
import { type OutgoingRecord, writeBatch } from "../protocol/record-codec.ts";
import type { Writer } from "../protocol/wire.ts";
import { WireConnection, type WireSettings } from "./wire-connection.ts";

export interface PartitionInfo {
  partition: number;
  /** Node id of the leader; -1 while there is none. */
  leader: number;
  leaderEpoch: number;
}

interface TopicInfo {
  partitions: PartitionInfo[];
  error: number;
}

/**
 * Which connection a request goes on: fetch long polls and group joins (which the broker
 * holds until the group settles) must not hold up anything else.
 */
export type Lane = "main" | "fetch" | "group";

/** One partition's answer to ListOffsets. */
export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class KafkaCluster {
  readonly settings: WireSettings;
  private readonly brokers = new Map<number, string>();
  /** The controller from the last metadata (-1: unknown), where CreateTopics goes. */
  private controller = -1;
  private readonly topics = new Map<string, TopicInfo>();
  private readonly connections = new Map<string, Promise<WireConnection>>();
  private bootstrap: Promise<WireConnection> | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly roundRobin = new Map<string, number>();
  /**
   * Metadata older than this is read again in the background when partitions are asked for
   * (Kafka's metadata.max.age.ms): producers pick up partitions added to a topic, so keyed
   * records follow the new count as Kafka's own clients do.
   */
  metadataMaxAgeMs = 5 * 60_000;
  private metadataReadAt = 0;
  private closed = false;
  /** Aborts connections still being opened when the client closes. */
  private readonly closing = new AbortController();

  constructor(settings: WireSettings) {
    this.settings = settings;
  }

  /** Connects to a bootstrap server (to check the cluster is there). */
  async connect(): Promise<void> {
    await this.anyConnection();
  }

  /** Closes every connection; requests in flight fail. */
  close(): void {
    this.closed = true;
    this.closing.abort();
    for (const pending of this.connections.values())
      pending.then(
        (c) => c.close(),
        () => {},
      );
    this.connections.clear();
    this.bootstrap?.then(
      (c) => c.close(),
      () => {},
    );
    this.bootstrap = undefined;
  }

  /** The partitions of `topic` (created when the broker auto-creates topics). */
  async partitions(topic: string): Promise<PartitionInfo[]> {
    let info = this.topics.get(topic);
    if (info && Date.now() - this.metadataReadAt > this.metadataMaxAgeMs && !this.closed) {
      this.refresh([topic]).catch(() => {});
    }
    if (!info || info.partitions.length === 0) {
      await this.refresh([topic]);
      info = this.topics.get(topic);
    }
    if (!info || info.partitions.length === 0) {
      const code = info?.error ?? 3;
      throw new KafkaProtocolError(code, `topic ${topic}: ${kafkaCodeName(code)}`);
    }
    return info.partitions;
  }

  /** The cached leader of one partition (-1 when unknown). */
  leaderOf(topic: string, partition: number): number {
    return this.topics.get(topic)?.partitions[partition]?.leader ?? -1;
  }

  /** Reads metadata for `topics` (one refresh at a time; callers during one share it). */
  refresh(topics: readonly string[]): Promise<void> {
    if (this.refreshing) {
      const missing = topics.filter((t) => !this.topics.has(t));
      return missing.length === 0
        ? this.refreshing
        : this.refreshing.then(() => this.refresh(missing));
    }
    const wanted = [...new Set([...this.topics.keys(), ...topics])];
    this.refreshing = this.readMetadata(wanted).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async readMetadata(topics: string[]): Promise<void> {
    const connection = await this.anyConnection();
    const version = connection.version(ApiKey.Metadata, 1, 8);
    const r = await connection.request(ApiKey.Metadata, version, (w) => {
      w.array(topics, (w, t) => w.string(t));
      if (version >= 4) w.bool(true); // allow auto-creation, where the broker allows it
      if (version >= 8) w.bool(false).bool(false);
    });
    if (version >= 3) r.int32(); // throttle
    const brokers = r.array((r) => {
      const node = r.int32();
      const host = r.string();
      const port = r.int32();
      r.nullableString(); // rack
      return [node, brokerAddress(host, port)] as const;
    });
    if (version >= 2) r.nullableString(); // cluster id
    const controller = r.int32();
    const answered = r.array((r) => {
      const error = r.int16();
      const name = r.string();
      r.bool(); // internal
      const partitions = r.array((r): PartitionInfo & { error: number } => {
        const perror = r.int16();
        const partition = r.int32();
        const leader = r.int32();
        const leaderEpoch = version >= 7 ? r.int32() : -1;
        r.array((r) => r.int32()); // replicas
        r.array((r) => r.int32()); // in-sync replicas
        if (version >= 5) r.array((r) => r.int32()); // offline replicas
        return { partition, leader, leaderEpoch, error: perror };
      });
      if (version >= 8) r.int32(); // authorized operations
      return { error, name, partitions };
    });
    this.controller = controller;
    this.metadataReadAt = Date.now();
    for (const [node, address] of brokers) this.brokers.set(node, address);
    for (const { error, name, partitions } of answered) {
      const sorted: PartitionInfo[] = [];
      for (const p of partitions) {
        sorted[p.partition] = {
          partition: p.partition,
          leader: p.leader,
          leaderEpoch: p.leaderEpoch,
        };
      }
      this.topics.set(name, { error, partitions: error === 0 ? sorted : [] });
    }
  }

  /**
   * Creates those of `topics` that do not exist, with the broker's default partition count
   * and replication (CreateTopics v4, Kafka 2.4+). Older brokers get no request (they
   * auto-create topics on metadata requests where allowed); existing topics are left alone;
   * any other refusal throws.
   */
  async createTopics(topics: readonly string[], timeoutMs = 10_000): Promise<void> {
    if (topics.length === 0) return;
    for (let attempt = 0; ; attempt++) {
      await this.refresh([]);
      const connection =
        this.controller >= 0 ? await this.connection(this.controller) : await this.anyConnection();
      let version: number;
      try {
        version = connection.version(ApiKey.CreateTopics, 4, 4);
      } catch {
        return;
      }
      const r = await connection.request(
        ApiKey.CreateTopics,
        version,
        (w) => {
          w.array(topics, (w, topic) => {
            w.string(topic).int32(-1).int16(-1); // the broker's defaults
            w.int32(0).int32(0); // no replica assignment, no configs
          });
          w.int32(timeoutMs).bool(false);
        },
        timeoutMs,
      );
      r.int32(); // throttle
      const results = r.array((r) => ({
        name: r.string(),
        error: r.int16(),
        message: r.nullableString(),
      }));
      // NOT_CONTROLLER: the controller moved since the metadata was read.
      if (results.some((t) => t.error === 41) && attempt < 3) continue;
      const failed = results.find((t) => t.error !== 0 && t.error !== 36);
      if (failed) {
        throw new KafkaProtocolError(
          failed.error,
          `topic ${failed.name} not created: ${kafkaCodeName(failed.error)}${failed.message ? ` (${failed.message})` : ""}`,
        );
      }
      return;
    }
  }

  /** Records a broker learnt outside Metadata (a group coordinator). */
  addBroker(node: number, address: string): void {
    if (!this.brokers.has(node)) this.brokers.set(node, address);
  }

  /** Drops the `lane` connection to `node` (it is reopened on next use). */
  dropConnection(node: number, lane: Lane): void {
    const key = `${lane}/${node}`;
    const pending = this.connections.get(key);
    this.connections.delete(key);
    pending?.then(
      (c) => c.close(),
      () => {},
    );
  }

  /** A connection to any broker, for requests any broker answers (FindCoordinator). */
  anyBroker(): Promise<WireConnection> {
    return this.anyConnection();
  }

  /** The connection to broker `node` for `lane`, opened on first use. */
  connection(node: number, lane: Lane = "main"): Promise<WireConnection> {
    if (this.closed) return Promise.reject(new KafkaConnectionError("Kafka client is closed"));
    const key = `${lane}/${node}`;
    let pending = this.connections.get(key);
    if (!pending) {
      const address = this.brokers.get(node);
      if (!address) {
        return Promise.reject(new KafkaConnectionError(`broker ${node} is not in the metadata`));
      }
      pending = WireConnection.open(address, this.settings, this.closing.signal);
      this.connections.set(key, pending);
      pending.then(
        (c) =>
          c.onClose(() => {
            if (this.connections.get(key) === pending) this.connections.delete(key);
          }),
        () => {
          if (this.connections.get(key) === pending) this.connections.delete(key);
        },
      );
    }
    return pending;
  }

  /** A connection for metadata: any open one, else the first bootstrap server that answers. */
  private async anyConnection(): Promise<WireConnection> {
    if (this.closed) throw new KafkaConnectionError("Kafka client is closed");
    for (const [key, pending] of this.connections) {
      if (key.startsWith("main/")) {
        const connection = await pending.catch(() => undefined);
        if (connection && !connection.closed) return connection;
      }
    }
    if (this.bootstrap) {
      const connection = await this.bootstrap.catch(() => undefined);
      if (connection && !connection.closed) return connection;
    }
    this.bootstrap = this.openBootstrap();
    return this.bootstrap;
  }

  private async openBootstrap(): Promise<WireConnection> {
    const errors: string[] = [];
    for (const server of this.settings.servers) {
      try {
        return await WireConnection.open(server, this.settings, this.closing.signal);
      } catch (error) {
        if (error instanceof KafkaProtocolError) throw error;
        errors.push((error as Error).message);
      }
    }
    throw new KafkaConnectionError(`no Kafka bootstrap server answered: ${errors.join("; ")}`);
  }

  /** The partition for a record: murmur2 of the key (Kafka's default), round-robin without. */
  choosePartition(topic: string, partitions: readonly PartitionInfo[], key: string | null): number {
    if (key !== null) return (murmur2(encoder.encode(key)) & 0x7fffffff) % partitions.length;
    const next = ((this.roundRobin.get(topic) ?? Math.floor(Math.random() * 1e6)) + 1) | 0;
    this.roundRobin.set(topic, next);
    const available = partitions.filter((p) => p.leader >= 0);
    const pool = available.length > 0 ? available : partitions;
    return (pool[next % pool.length] as PartitionInfo).partition;
  }

  /**
   * Writes `records` (per topic, in order) and resolves once every partition's batch is
   * acknowledged at `acks` (with acks 0, once written to the socket); `timeoutMs` is the
   * broker's acknowledgement timeout. Retriable failures (leader moved, broker restarting,
   * connection lost) are retried with fresh metadata for up to `settings.retryTimeoutMs`.
   */
  async produce(
    acks: -1 | 0 | 1,
    timeoutMs: number,
    records: ReadonlyMap<string, readonly OutgoingRecord[]>,
  ): Promise<void> {
    const budgetMs = Math.min(timeoutMs, this.settings.retryTimeoutMs);
    // A broker that accepts connections but does not answer would otherwise hold the
    // produce for the whole request timeout, past the retry budget.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new KafkaConnectionError(`no answer from Kafka within ${budgetMs} ms`)),
        budgetMs,
      );
    });
    try {
      await Promise.race([
        this.produceUntil(acks, timeoutMs, records, Date.now() + budgetMs),
        expired,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async produceUntil(
    acks: -1 | 0 | 1,
    timeoutMs: number,
    records: ReadonlyMap<string, readonly OutgoingRecord[]>,
    deadline: number,
  ): Promise<void> {
    // topic → partition → records, in queue order.
    let todo = new Map<string, Map<number, OutgoingRecord[]>>();
    for (const [topic, list] of records) {
      const partitions = await this.partitionsWithin(topic, deadline);
      const byPartition = new Map<number, OutgoingRecord[]>();
      for (const record of list) {
        const p = record.partition ?? this.choosePartition(topic, partitions, record.key);
        const bucket = byPartition.get(p);
        if (bucket) bucket.push(record);
        else byPartition.set(p, [record]);
      }
      todo.set(topic, byPartition);
    }
    for (let attempt = 0; ; attempt++) {
      const failed = await this.produceOnce(acks, timeoutMs, todo, deadline);
      if (failed.retry.size === 0) return;
      if (Date.now() + backoff(attempt) >= deadline) throw failed.error;
      await sleep(backoff(attempt));
      await this.refresh([...failed.retry.keys()]).catch(() => {});
      todo = failed.retry;
    }
  }

  /**
   * The partitions of `topic`, retrying what a cluster answers while it creates a topic or
   * moves leaders (LEADER_NOT_AVAILABLE and the like) until `deadline`.
   */
  async partitionsWithin(topic: string, deadline: number): Promise<PartitionInfo[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.partitions(topic);
      } catch (error) {
        const retriable =
          error instanceof KafkaConnectionError ||
          (error instanceof KafkaProtocolError && error.retriable);
        if (!retriable || Date.now() + backoff(attempt) >= deadline) throw error;
        await sleep(backoff(attempt));
        this.topics.delete(topic);
      }
    }
  }

  /** One Produce per leader; returns what must be retried and the last error seen. */
  private async produceOnce(
    acks: -1 | 0 | 1,
    timeoutMs: number,
    todo: Map<string, Map<number, OutgoingRecord[]>>,
    deadline: number,
  ): Promise<{ retry: Map<string, Map<number, OutgoingRecord[]>>; error: Error }> {
    const byLeader = new Map<number, Map<string, Map<number, OutgoingRecord[]>>>();
    const retry = new Map<string, Map<number, OutgoingRecord[]>>();
    let lastError: Error = new KafkaConnectionError("no leader");
    const again = (topic: string, partition: number, list: OutgoingRecord[], error: Error) => {
      lastError = error;
      let parts = retry.get(topic);
      if (!parts) {
        parts = new Map();
        retry.set(topic, parts);
      }
      parts.set(partition, list);
    };
    for (const [topic, parts] of todo) {
      for (const [partition, list] of parts) {
        const leader = this.leaderOf(topic, partition);
        if (leader < 0) {
          again(
            topic,
            partition,
            list,
            new KafkaProtocolError(5, `${topic}-${partition}: no leader`),
          );
          continue;
        }
        let forLeader = byLeader.get(leader);
        if (!forLeader) {
          forLeader = new Map();
          byLeader.set(leader, forLeader);
        }
        let topicParts = forLeader.get(topic);
        if (!topicParts) {
          topicParts = new Map();
          forLeader.set(topic, topicParts);
        }
        topicParts.set(partition, list);
      }
    }
    const now = Date.now();
    await Promise.all(
      [...byLeader].map(async ([leader, topics]) => {
        try {
          const connection = await this.connection(leader);
          // The caller has been told this produce failed: records sent now could land
          // after those of the caller's next produce.
          if (Date.now() >= deadline)
            throw new KafkaConnectionError(`no answer from broker ${leader} in time`);
          const version = connection.version(ApiKey.Produce, 3, 8);
          const body = (w: Writer) => {
            w.nullableString(null).int16(acks).int32(timeoutMs);
            w.array([...topics], (w, [topic, parts]) => {
              w.string(topic);
              w.array([...parts], (w, [partition, list]) => {
                w.int32(partition);
                const sizeAt = w.reserveInt32();
                writeBatch(w, list, now, this.settings.compression);
                w.patchInt32(sizeAt, w.offset - sizeAt - 4);
              });
            });
          };
          if (acks === 0) {
            connection.send(ApiKey.Produce, version, body);
            return;
          }
          const r = await connection.request(ApiKey.Produce, version, body);
          const count = r.int32();
          for (let t = 0; t < count; t++) {
            const topic = r.string();
            const partitions = r.int32();
            for (let p = 0; p < partitions; p++) {
              const partition = r.int32();
              const error = r.int16();
              r.int64(); // base offset
              r.int64(); // log append time
              if (version >= 5) r.int64(); // log start offset
              let message: string | null = null;
              if (version >= 8) {
                r.array((r) => [r.int32(), r.nullableString()]);
                message = r.nullableString();
              }
              if (error === 0) continue;
              const list = topics.get(topic)?.get(partition);
              const failure = new KafkaProtocolError(
                error,
                `produce to ${topic}-${partition} refused: ${kafkaCodeName(error)}${message ? ` (${message})` : ""}`,
              );
              if (!list) continue;
              if (isRetriableCode(error)) again(topic, partition, list, failure);
              else throw failure;
            }
          }
        } catch (error) {
          if (!(error instanceof KafkaConnectionError)) throw error;
          // The connection is gone (or never came): everything sent on it is retried.
          for (const [topic, parts] of topics) {
            for (const [partition, list] of parts) again(topic, partition, list, error);
          }
        }
      }),
    );
    return { retry, error: lastError };
  }

  /** The offset of `timestamp` (-1 latest, -2 earliest) for each partition, from its leader. */
  async listOffsets(
    topic: string,
    partitions: readonly number[],
    timestamp: -1 | -2,
  ): Promise<PartitionOffset[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.listOffsetsOnce(topic, partitions, timestamp);
      } catch (error) {
        const retriable =
          error instanceof KafkaConnectionError ||
          (error instanceof KafkaProtocolError && error.retriable);
        if (!retriable || attempt >= 8 || this.closed) throw error;
        await sleep(backoff(attempt));
        await this.refresh([topic]).catch(() => {});
      }
    }
  }

  private async listOffsetsOnce(
    topic: string,
    partitions: readonly number[],
    timestamp: -1 | -2,
  ): Promise<PartitionOffset[]> {
    const byLeader = new Map<number, number[]>();
    for (const p of partitions) {
      const leader = this.leaderOf(topic, p);
      if (leader < 0) throw new KafkaProtocolError(5, `${topic}-${p}: no leader`);
      const list = byLeader.get(leader);
      if (list) list.push(p);
      else byLeader.set(leader, [p]);
    }
    const out: PartitionOffset[] = [];
    await Promise.all(
      [...byLeader].map(async ([leader, list]) => {
        const connection = await this.connection(leader);
        const version = connection.version(ApiKey.ListOffsets, 1, 5);
        const r = await connection.request(ApiKey.ListOffsets, version, (w) => {
          w.int32(-1);
          if (version >= 2) w.int8(0);
          w.array([topic], (w, t) => {
            w.string(t);
            w.array(list, (w, p) => {
              w.int32(p);
              if (version >= 4) w.int32(-1);
              w.int64(timestamp);
            });
          });
        });
        if (version >= 2) r.int32(); // throttle
        const topics = r.int32();
        for (let t = 0; t < topics; t++) {
          const name = r.string();
          const count = r.int32();
          for (let i = 0; i < count; i++) {
            const partition = r.int32();
            const error = r.int16();
            r.int64(); // timestamp
            const offset = Number(r.int64());
            if (version >= 4) r.int32(); // leader epoch
            if (error !== 0) {
              throw new KafkaProtocolError(
                error,
                `offsets of ${name}-${partition}: ${kafkaCodeName(error)}`,
              );
            }
            out.push({ topic: name, partition, offset });
          }
        }
      }),
    );
    return out;
  }
}

/** "host:port" for a broker a response names (IPv6 literals in brackets). */
export function brokerAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** 100 ms doubling to 2 s, with jitter so instances do not retry in step. */
export function backoff(attempt: number): number {
  const base = Math.min(2_000, 100 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}
