/**
 * West's changelog topics (docs/idempotency.md, "The topic"): one per west binding and
 * request topic, co-partitioned with the request topic (an entry about a call read from
 * request partition p goes to changelog partition p), compacted and deleted by time.
 * Created at start-up when absent; a topic that cannot be created, or has fewer partitions
 * than its request topic, stops start-up with what an operator must create instead.
 */
import type { KafkaCluster, TopicSpec } from "../kafka/client/kafka-cluster.ts";
import type { Logger } from "../ops/logger.ts";

/** A request topic and the changelog that records its calls. */
export interface ChangelogTopic {
  requestTopic: string;
  topic: string;
  /** The changelog's partition count (at least the request topic's). */
  partitions: number;
}

const maxTopicNameLength = 249;
const defaultMaxMessageBytes = 1_048_588;

/**
 * The default changelog name: `zilla-<namespace>-<binding>-<request topic>-changelog`, every
 * character Kafka does not allow in a topic name replaced by `_`; a name longer than Kafka
 * allows keeps its start and ends in a hash of the whole.
 */
export function defaultChangelogTopic(
  namespace: string,
  binding: string,
  requestTopic: string,
): string {
  const legal = (part: string) => part.replace(/[^a-zA-Z0-9._-]/g, "_");
  const name = `zilla-${legal(namespace)}-${legal(binding)}-${legal(requestTopic)}-changelog`;
  if (name.length <= maxTopicNameLength) return name;
  const hash = fnv1a(name).toString(16).padStart(8, "0");
  return `${name.slice(0, maxTopicNameLength - 9)}-${hash}`;
}

/** Retention and segment sizes derived from the idempotency window. */
export function changelogConfigs(windowMs: number, replayMaxBytes: number): Record<string, string> {
  // Entries must outlive the window, plus time for a west that restarts or a partition that
  // moves; Kafka deletes whole segments only, so segments roll at most every window.
  const retentionMs = windowMs + Math.max(windowMs, 10 * 60_000);
  const segmentMs = Math.max(60_000, Math.min(windowMs, 3_600_000));
  const configs: Record<string, string> = {
    "cleanup.policy": "compact,delete",
    "retention.ms": String(retentionMs),
    "segment.ms": String(segmentMs),
  };
  // One entry holds a whole reply: a topic's batches must fit the largest.
  const entryBytes = replayMaxBytes + 64 * 1024;
  if (entryBytes > defaultMaxMessageBytes) configs["max.message.bytes"] = String(entryBytes);
  return configs;
}

export interface EnsureChangelogOptions {
  cluster: KafkaCluster;
  /** Request topic → changelog topic. */
  topics: ReadonlyMap<string, string>;
  windowMs: number;
  replayMaxBytes: number;
  /** Names the binding in errors. */
  binding: string;
  logger: Logger;
}

/** Makes sure every changelog exists with enough partitions; throws what to do if not. */
export async function ensureChangelogTopics(
  opts: EnsureChangelogOptions,
): Promise<ChangelogTopic[]> {
  const { cluster } = opts;
  const configs = changelogConfigs(opts.windowMs, opts.replayMaxBytes);
  const out: ChangelogTopic[] = [];
  for (const [requestTopic, topic] of opts.topics) {
    const deadline = Date.now() + cluster.settings.retryTimeoutMs;
    const needed = (await cluster.partitionsWithin(requestTopic, deadline)).length;
    const spec: TopicSpec = { name: topic, partitions: needed, configs };
    const fail = (problem: string): never => {
      throw new Error(changelogProblem(opts.binding, requestTopic, spec, problem));
    };
    let partitions = await cluster.partitionCount(topic);
    if (partitions === undefined) {
      try {
        await cluster.createTopics([spec]);
      } catch (error) {
        fail(`could not be created: ${(error as Error).message}`);
      }
      partitions = await createdPartitions(cluster, topic, deadline);
      if (partitions === undefined) fail("was not created (the cluster did not create it)");
      opts.logger.info("changelog topic created", { topic, requestTopic, partitions, configs });
    }
    if ((partitions as number) < needed) {
      fail(`has ${partitions} partitions, fewer than request topic ${requestTopic}'s ${needed}`);
    }
    out.push({ requestTopic, topic, partitions: partitions as number });
  }
  return out;
}

/** A new topic's partition count once metadata shows it (brokers publish it a moment later). */
async function createdPartitions(
  cluster: KafkaCluster,
  topic: string,
  deadline: number,
): Promise<number | undefined> {
  for (let waitMs = 50; ; waitMs = Math.min(waitMs * 2, 1_000)) {
    const partitions = await cluster.partitionCount(topic);
    if (partitions !== undefined || Date.now() + waitMs > deadline) return partitions;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
}

/** The start-up error: the problem, and the topic an operator can create instead. */
function changelogProblem(
  binding: string,
  requestTopic: string,
  spec: TopicSpec,
  problem: string,
): string {
  const configs = Object.entries(spec.configs ?? {})
    .map(([name, value]) => ` --config ${name}=${value}`)
    .join("");
  return (
    `west ${binding}: changelog topic ${spec.name} (idempotency records of request topic ` +
    `${requestTopic}) ${problem}. Create it with at least ${spec.partitions} partitions: ` +
    `kafka-topics.sh --create --topic ${spec.name} --partitions ${spec.partitions}${configs}; ` +
    `or name another in options.idempotency.changelog.topics, or set ` +
    `options.idempotency.store: memory (nothing survives a crash; docs/idempotency.md)`
  );
}

/** 32-bit FNV-1a of a string's UTF-16 units (a short, stable suffix for long names). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}
