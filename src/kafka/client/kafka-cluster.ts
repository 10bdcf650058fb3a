/**
 * The gateway's own Kafka client for its hot path, as one handle: cluster metadata
 * (cluster-metadata.ts), a connection per broker and purpose (connection-pool.ts), Produce
 * with an outcome per item (produce-items.ts), ListOffsets (offset-lookup.ts), and the
 * connections Fetch requests go on (partition-reader.ts drives them). Each Kafka API's
 * request and answer live in apis/.
 *
 * Why not kafkajs here: per call, kafkajs spent 640–860 µs of CPU on a produce/consume
 * round trip where this code spends about a quarter of that (bench/profile/).
 *
 * Versions are negotiated per broker (ApiVersions) inside the non-flexible ranges every
 * Kafka since 2.1 and every Kafka-compatible broker the gateway targets speaks: Produce
 * 3–8, Fetch 4–11, ListOffsets 1–5, Metadata 1–8.
 */

import { murmur2 } from "../murmur2-partitioner.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import { KafkaProtocolError, kafkaCodeName } from "../protocol/errors.ts";
import type { OutgoingRecord } from "../protocol/record-codec.ts";
import { ClusterMetadata, type PartitionInfo } from "./cluster-metadata.ts";
import { ConnectionPool, type Lane } from "./connection-pool.ts";
import { type ListOffsetsOptions, listOffsets, type PartitionOffset } from "./offset-lookup.ts";
import { type ProduceHooks, type ProduceItem, produceItems } from "./produce-items.ts";
import type { WireConnection, WireSettings } from "./wire-connection.ts";

// The types of this handle's signatures, so that its users need import only it.
export type { Lane, PartitionInfo, PartitionOffset, ProduceItem };

/** The longest a produced record is retried when `produceRetryMaxMs` is not set. */
export const defaultProduceRetryMaxMs = 60_000;

/** A topic to create: partitions and replication default to the broker's. */
export interface TopicSpec {
  name: string;
  partitions?: number;
  replicationFactor?: number;
  /** Topic configs, e.g. `cleanup.policy`. */
  configs?: Readonly<Record<string, string>>;
}

const encoder = new TextEncoder();

export class KafkaCluster {
  readonly settings: WireSettings;
  private readonly pool: ConnectionPool;
  private readonly metadata: ClusterMetadata;
  private readonly roundRobin = new Map<string, number>();
  private readonly produceContext;

  constructor(settings: WireSettings) {
    this.settings = settings;
    this.pool = new ConnectionPool(settings);
    this.metadata = new ClusterMetadata(this.pool);
    this.produceContext = {
      pool: this.pool,
      metadata: this.metadata,
      produceRetryMaxMs: settings.produceRetryMaxMs ?? defaultProduceRetryMaxMs,
      compression: settings.compression,
      choosePartition: (topic: string, partitions: readonly PartitionInfo[], key: string | null) =>
        this.choosePartition(topic, partitions, key),
    };
  }

  /** Connects to a bootstrap server (to check the cluster is there). */
  async connect(): Promise<void> {
    await this.pool.anyConnection();
  }

  /** Closes every connection; requests in flight fail. */
  close(): void {
    this.pool.close();
  }

  /** How old metadata may get before partitions are read again (Kafka's metadata.max.age.ms; default 5 min). */
  get metadataMaxAgeMs(): number {
    return this.metadata.maxAgeMs;
  }

  set metadataMaxAgeMs(ms: number) {
    this.metadata.maxAgeMs = ms;
  }

  /** The partitions of `topic` (created when the broker auto-creates topics). */
  partitions(topic: string): Promise<PartitionInfo[]> {
    return this.metadata.partitions(topic);
  }

  /** The partitions of `topic`, retrying what a cluster answers while it creates it, until `deadline`. */
  partitionsWithin(topic: string, deadline: number): Promise<PartitionInfo[]> {
    return this.metadata.partitionsWithin(topic, deadline);
  }

  /** The cached leader of one partition (-1 when unknown). */
  leaderOf(topic: string, partition: number): number {
    return this.metadata.leaderOf(topic, partition);
  }

  /** Reads metadata for `topics` (one refresh at a time; callers during one share it). */
  refresh(topics: readonly string[]): Promise<void> {
    return this.metadata.refresh(topics);
  }

  /** The partition count of `topic`, undefined when it does not exist (never auto-creates it). */
  partitionCount(topic: string): Promise<number | undefined> {
    return this.metadata.partitionCount(topic);
  }

  /**
   * Creates those of `topics` that do not exist (CreateTopics v4, Kafka 2.4+): a name gets
   * the broker's default partition count and replication, a spec its own partitions and
   * configs. Older brokers get no request (they auto-create topics on metadata requests
   * where allowed); existing topics are left alone; any other refusal throws.
   */
  async createTopics(topics: readonly (string | TopicSpec)[], timeoutMs = 10_000): Promise<void> {
    if (topics.length === 0) return;
    const specs = topics.map((t): TopicSpec => (typeof t === "string" ? { name: t } : t));
    for (let attempt = 0; ; attempt++) {
      await this.refresh([]);
      const connection =
        this.metadata.controller >= 0
          ? await this.connection(this.metadata.controller)
          : await this.pool.anyConnection();
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
          w.array(specs, (w, spec) => {
            // -1: the broker's defaults.
            w.string(spec.name)
              .int32(spec.partitions ?? -1)
              .int16(spec.replicationFactor ?? -1);
            w.int32(0); // no replica assignment
            w.array(Object.entries(spec.configs ?? {}), (w, [name, value]) =>
              w.string(name).nullableString(value),
            );
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
    this.pool.addBroker(node, address);
  }

  /** Drops the `lane` connection to `node` (it is reopened on next use). */
  dropConnection(node: number, lane: Lane): void {
    this.pool.dropConnection(node, lane);
  }

  /** A connection to any broker, for requests any broker answers (FindCoordinator). */
  anyBroker(): Promise<WireConnection> {
    return this.pool.anyConnection();
  }

  /** The connection to broker `node` for `lane`, opened on first use. */
  connection(node: number, lane: Lane = "main"): Promise<WireConnection> {
    return this.pool.connection(node, lane);
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
   * Writes `items` at `acks` (`ackTimeoutMs`: the broker's acknowledgement timeout) and tells
   * `hooks.settle` each item's outcome as soon as its partition's is known. Each item is
   * retried until its own deadline, at most `settings.produceRetryMaxMs`. Resolves once
   * every item is settled and nothing of this call is in flight.
   */
  produceEach<T extends ProduceItem>(
    acks: -1 | 0 | 1,
    ackTimeoutMs: number,
    items: readonly T[],
    hooks: ProduceHooks<T>,
  ): Promise<void> {
    return produceItems(this.produceContext, acks, ackTimeoutMs, items, hooks);
  }

  /**
   * Writes `records` (per topic, in order) and resolves once all are acknowledged at `acks`
   * (with acks 0, once written to the socket), retrying for up to min(`timeoutMs`,
   * `settings.retryTimeoutMs`); rejects with the first failure. For tools and tests: the
   * gateway's producers use `produceEach`.
   */
  async produce(
    acks: -1 | 0 | 1,
    timeoutMs: number,
    records: ReadonlyMap<string, readonly OutgoingRecord[]>,
  ): Promise<void> {
    const deadlineMs = Date.now() + Math.min(timeoutMs, this.settings.retryTimeoutMs);
    const items: ProduceItem[] = [];
    for (const [topic, list] of records) {
      // Asked even when it has no records: the cluster must be there and know the topic.
      await this.metadata.partitionsWithin(topic, deadlineMs);
      for (const record of list) items.push({ topic, records: record, deadlineMs });
    }
    let failure: Error | undefined;
    await this.produceEach(acks, timeoutMs, items, {
      settle(_item, error) {
        failure ??= error;
      },
    });
    if (failure) throw failure;
  }

  /**
   * The offset of `timestamp` for each partition, from its leader (-1 latest, -2 earliest, or
   * epoch ms: the first record at or after it, offset -1 when there is none), retried until
   * `options.deadlineMs` (default: `settings.retryTimeoutMs` from now).
   */
  listOffsets(
    topic: string,
    partitions: readonly number[],
    timestamp: number,
    options: Partial<ListOffsetsOptions> = {},
  ): Promise<PartitionOffset[]> {
    return listOffsets(
      this.pool,
      this.metadata,
      { topic, partitions, timestamp },
      { deadlineMs: Date.now() + this.settings.retryTimeoutMs, ...options },
    );
  }
}
