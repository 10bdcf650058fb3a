/**
 * What the client knows of the cluster: each topic's partitions and their leaders, and the
 * controller, from Metadata answers (one refresh at a time; callers during one share it).
 * An answer that names a topic not asked for, leaves one out, or numbers partitions with
 * gaps is a KafkaAnswerError and changes nothing.
 */
import { KafkaAnswerError, KafkaProtocolError, kafkaCodeName } from "../protocol/errors.ts";
import { callApi } from "./apis/kafka-api.ts";
import { type MetadataResponse, metadataApi } from "./apis/metadata.ts";
import { brokerAddress, type ConnectionPool } from "./connection-pool.ts";
import { backoff, isRetriable, sleep, withDeadline } from "./retry.ts";

export interface PartitionInfo {
  partition: number;
  /** Node id of the leader; -1 while there is none. */
  leader: number;
  leaderEpoch: number;
}

/** The least time before a deadline that metadata is still asked for again. */
const lastTryMs = 100;

interface TopicInfo {
  partitions: PartitionInfo[];
  error: number;
}

export class ClusterMetadata {
  /** The controller from the last metadata (-1: unknown), where CreateTopics goes. */
  controller = -1;
  /**
   * Metadata older than this is read again in the background when partitions are asked for
   * (Kafka's metadata.max.age.ms): producers pick up partitions added to a topic, so keyed
   * records follow the new count as Kafka's own clients do.
   */
  maxAgeMs = 5 * 60_000;
  private readAtMs = 0;
  private readonly pool: ConnectionPool;
  private readonly topics = new Map<string, TopicInfo>();
  private refreshing: Promise<void> | undefined;

  constructor(pool: ConnectionPool) {
    this.pool = pool;
  }

  /**
   * The cached partitions of `topic`, or undefined when none are known. Past `maxAgeMs` they
   * are read again in the background: every producer looks partitions up here.
   */
  cached(topic: string): PartitionInfo[] | undefined {
    const info = this.topics.get(topic);
    if (!info || info.partitions.length === 0) return undefined;
    if (Date.now() - this.readAtMs > this.maxAgeMs) this.refresh([topic]).catch(() => {});
    return info.partitions;
  }

  /** The partitions of `topic` (created when the broker auto-creates topics). */
  async partitions(topic: string): Promise<PartitionInfo[]> {
    const known = this.cached(topic);
    if (known) return known;
    await this.refresh([topic]);
    const info = this.topics.get(topic);
    if (!info || info.partitions.length === 0) {
      const code = info?.error ?? 3;
      throw new KafkaProtocolError(code, `topic ${topic}: ${kafkaCodeName(code)}`);
    }
    return info.partitions;
  }

  /**
   * The partitions of `topic`, retrying what a cluster answers while it creates a topic or
   * moves leaders (LEADER_NOT_AVAILABLE and the like) until `deadlineMs`.
   */
  async partitionsWithin(topic: string, deadlineMs: number): Promise<PartitionInfo[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await withDeadline(this.partitions(topic), deadlineMs, `partitions of ${topic}`);
      } catch (error) {
        // The last wait is cut to the deadline, so the last try comes just before it rather
        // than a whole backoff early.
        const leftMs = deadlineMs - Date.now();
        if (!isRetriable(error) || leftMs <= lastTryMs) throw error;
        await sleep(Math.min(backoff(attempt), leftMs - lastTryMs));
        this.topics.delete(topic);
      }
    }
  }

  /** The cached leader of one partition (-1 when unknown). */
  leaderOf(topic: string, partition: number): number {
    return this.topics.get(topic)?.partitions[partition]?.leader ?? -1;
  }

  /** Reads metadata for `topics` and every topic known so far. */
  refresh(topics: readonly string[]): Promise<void> {
    if (this.refreshing) {
      const missing = topics.filter((t) => !this.topics.has(t));
      return missing.length === 0
        ? this.refreshing
        : this.refreshing.then(() => this.refresh(missing));
    }
    const wanted = [...new Set([...this.topics.keys(), ...topics])];
    this.refreshing = this.read(wanted).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * The partition count of `topic`, or undefined when it does not exist. Never asks the
   * broker to auto-create it, and caches nothing about a missing topic (a later refresh
   * would otherwise ask for it with auto-creation on).
   */
  async partitionCount(topic: string): Promise<number | undefined> {
    await this.read([topic], false);
    const info = this.topics.get(topic);
    if (info && info.partitions.length > 0) return info.partitions.length;
    if (info === undefined || info.error === 3) return undefined;
    throw new KafkaProtocolError(info.error, `topic ${topic}: ${kafkaCodeName(info.error)}`);
  }

  private async read(topics: string[], allowAutoCreate = true): Promise<void> {
    const connection = await this.pool.anyConnection();
    const answer = await callApi(connection, metadataApi, { topics, allowAutoCreate });
    checkMetadataAnswer(connection.address, topics, answer);
    this.controller = answer.controller;
    this.readAtMs = Date.now();
    for (const b of answer.brokers) this.pool.setBroker(b.node, brokerAddress(b.host, b.port));
    for (const { error, name, partitions } of answer.topics) {
      // Unknown topics asked for without auto-creation are not remembered (see partitionCount).
      if (!allowAutoCreate && error === 3) {
        this.topics.delete(name);
        continue;
      }
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
}

/**
 * Throws a KafkaAnswerError for a Metadata answer that names a topic not asked for, leaves
 * one out, or numbers a topic's partitions other than 0..n-1.
 */
export function checkMetadataAnswer(
  address: string,
  asked: readonly string[],
  answer: MetadataResponse,
): void {
  const wanted = new Set(asked);
  const named = new Set<string>();
  for (const topic of answer.topics) {
    // An empty list asks for no topics; topics a broker names anyway are harmless to keep.
    if (asked.length > 0 && !wanted.has(topic.name)) {
      throw new KafkaAnswerError(
        `${address}: Metadata answer names topic ${topic.name}, which was not asked for`,
      );
    }
    named.add(topic.name);
    const count = topic.partitions.length;
    const seen = new Set<number>();
    for (const p of topic.partitions) {
      if (!Number.isInteger(p.partition) || p.partition < 0 || p.partition >= count) {
        throw new KafkaAnswerError(
          `${address}: Metadata answer gives ${topic.name} ${count} partitions but names partition ${p.partition}`,
        );
      }
      seen.add(p.partition);
    }
    if (seen.size !== count) {
      throw new KafkaAnswerError(
        `${address}: Metadata answer names a partition of ${topic.name} twice`,
      );
    }
  }
  for (const topic of asked) {
    if (!named.has(topic)) {
      throw new KafkaAnswerError(
        `${address}: Metadata answer leaves out topic ${topic}, which was asked for`,
      );
    }
  }
}
