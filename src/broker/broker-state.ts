/**
 * What the core API handlers share: the topics, the topic-creation policy and the
 * producer-id counter. One per broker.
 */
import type { CleanupPolicy } from "./log/partition-log.ts";
import type { Topic, TopicStore } from "./log/topic-store.ts";

/** Mutable broker-wide state handed to the core API handlers. */
export interface BrokerState {
  topics: TopicStore;
  /** Partitions of topics created implicitly (Metadata auto-creation, CreateTopics with -1). */
  defaultPartitions: number;
  autoCreateTopics: boolean;
  /** Largest record batch a Produce may write (Kafka's `message.max.bytes`). */
  maxMessageBytes: number;
  /** The next id InitProducerId hands out. */
  nextProducerId: number;
  log: (line: string) => void;
}

/** Creates a topic and logs it; the caller has validated the name and count. */
export function createTopicLogged(
  state: BrokerState,
  name: string,
  partitions: number,
  policy?: CleanupPolicy,
): Topic {
  const topic = state.topics.create(name, partitions, policy);
  const compacted = policy?.compact ? ", compacted" : "";
  state.log(`created topic ${name} with ${partitions} partition(s)${compacted}`);
  return topic;
}
