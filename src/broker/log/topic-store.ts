/**
 * The broker's topics: name → partition logs. All in memory; deleting a topic closes its
 * logs so fetches waiting on them answer at once.
 */
import { BatchArena } from "./batch-arena.ts";
import { type CleanupPolicy, PartitionLog, type RetentionLimits } from "./partition-log.ts";

/** A topic and its partition logs (index = partition id). */
export interface Topic {
  name: string;
  partitions: PartitionLog[];
  policy: CleanupPolicy;
}

const MAX_TOPIC_NAME = 249;
const LEGAL_TOPIC_NAME = /^[a-zA-Z0-9._-]+$/;

/** Kafka's topic-name rules; returns why the name is illegal, or null when it is fine. */
export function validateTopicName(name: string): string | null {
  if (name.length === 0) return "Topic name is illegal, it can't be empty";
  if (name === "." || name === "..") return `Topic name cannot be "." or ".."`;
  if (name.length > MAX_TOPIC_NAME) {
    return `Topic name is illegal, it can't be longer than ${MAX_TOPIC_NAME} characters`;
  }
  if (!LEGAL_TOPIC_NAME.test(name)) {
    return `Topic name "${name}" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`;
  }
  return null;
}

/** Every topic of one broker. */
export class TopicStore {
  private readonly topics = new Map<string, Topic>();
  private readonly limits: RetentionLimits;
  private readonly now: () => number;
  /** The memory every partition's batches are copied into (batch-arena.ts). */
  readonly arena = new BatchArena();

  constructor(limits: RetentionLimits = {}, now = Date.now) {
    this.limits = limits;
    this.now = now;
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  /** The log of one partition, or undefined when the topic or partition does not exist. */
  partition(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  /** Creates a topic; the caller has checked that the name is legal and free. */
  create(name: string, partitionCount: number, policy: CleanupPolicy = { compact: false }): Topic {
    const partitions: PartitionLog[] = [];
    for (let i = 0; i < partitionCount; i++) {
      partitions.push(new PartitionLog(name, i, this.limits, this.now, policy, this.arena));
    }
    const topic = { name, partitions, policy };
    this.topics.set(name, topic);
    return topic;
  }

  /** Adds partitions until the topic has `partitionCount` (Kafka's CreatePartitions); never removes. */
  grow(name: string, partitionCount: number): void {
    const topic = this.topics.get(name);
    if (topic === undefined) return;
    for (let i = topic.partitions.length; i < partitionCount; i++) {
      topic.partitions.push(
        new PartitionLog(name, i, this.limits, this.now, topic.policy, this.arena),
      );
    }
  }

  /** Deletes a topic; false when it did not exist. */
  delete(name: string): boolean {
    const topic = this.topics.get(name);
    if (topic === undefined) return false;
    this.topics.delete(name);
    for (const log of topic.partitions) log.close();
    return true;
  }

  all(): IterableIterator<Topic> {
    return this.topics.values();
  }

  /** Applies age retention to every partition (size retention already runs on append). */
  enforceRetention(): void {
    const now = this.now();
    for (const topic of this.topics.values()) {
      for (const log of topic.partitions) log.enforceRetention(now);
    }
  }

  /** Compacts every partition of the compacted topics now. */
  compactAll(): void {
    for (const topic of this.topics.values()) {
      if (topic.policy.compact) for (const log of topic.partitions) log.compact();
    }
  }

  /** Closes every log (broker shutdown). */
  close(): void {
    for (const topic of this.topics.values()) {
      for (const log of topic.partitions) log.close();
    }
    this.topics.clear();
  }
}
