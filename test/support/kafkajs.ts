/**
 * kafkajs as the tests' independent Kafka client: a kafkajs instance for the same cluster
 * as a gateway's Kafka handle, the record contract's records as kafkajs messages and back,
 * and a kafkajs partitioner that picks partitions with the gateway's murmur2 (the same
 * choices as Java's default partitioner). The gateway itself never loads kafkajs.
 */
import { randomInt } from "node:crypto";
import {
  type ICustomPartitioner,
  type IHeaders,
  type KafkaConfig,
  Kafka as KafkaJs,
  logLevel,
  type Message,
  type PartitionerArgs,
} from "kafkajs";
import type { Kafka } from "../../src/kafka/kafka-client.ts";
import { murmur2 } from "../../src/kafka/murmur2-partitioner.ts";
import type { ContractRecord, RecordHeader } from "../../src/kafka/record-contract.ts";

/** A kafkajs client for the cluster `kafka` points at (its servers, TLS and SASL). */
export function kafkajsFor(kafka: Kafka, extra: Partial<KafkaConfig> = {}): KafkaJs {
  const { wire } = kafka;
  const config: KafkaConfig = {
    clientId: `${wire.clientId}-test`,
    brokers: wire.servers,
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5_000 },
    logLevel: logLevel.NOTHING,
    ...extra,
  };
  if (wire.sasl) {
    const { mechanism, username, password } = wire.sasl;
    config.sasl = { mechanism, username, password } as KafkaConfig["sasl"];
  }
  if (wire.tls) {
    config.ssl = {
      ...(wire.tls.ca ? { ca: wire.tls.ca } : {}),
      ...(wire.tls.cert ? { cert: wire.tls.cert } : {}),
      ...(wire.tls.key ? { key: wire.tls.key } : {}),
      ...(wire.tls.sni ? { servername: wire.tls.sni } : {}),
      rejectUnauthorized: !wire.tls.insecure,
    };
  }
  return new KafkaJs(config);
}

/**
 * A contract record as a kafkajs message (header order preserved; repeated names grouped).
 * Without `timestamp` the record gets the wall clock when its batch is encoded.
 */
export function toKafkaMessage(record: ContractRecord, timestamp?: number): Message {
  const headers: IHeaders = {};
  for (const [name, value] of record.headers) {
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return {
    key: record.key,
    value:
      record.value === null
        ? null
        : Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength),
    headers,
    ...(timestamp === undefined ? {} : { timestamp: String(timestamp) }),
  };
}

/** kafkajs' decoded headers as the contract's ordered header list (values as UTF-8 text). */
export function headersFromKafka(headers: IHeaders | undefined): RecordHeader[] {
  const out: RecordHeader[] = [];
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v.toString()]);
  }
  return out;
}

const encoder = new TextEncoder();

/** A kafkajs partitioner choosing partitions exactly as Java's default does (murmur2). */
export const createPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const numPartitions = partitionMetadata.length;
    if (message.key !== null && message.key !== undefined) {
      const key = typeof message.key === "string" ? encoder.encode(message.key) : message.key;
      return (murmur2(key) & 0x7fffffff) % numPartitions;
    }
    const next = ((counters.get(topic) ?? randomInt(2 ** 31)) + 1) | 0;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length === 0) return (next & 0x7fffffff) % numPartitions;
    return (available[(next & 0x7fffffff) % available.length] as (typeof available)[number])
      .partitionId;
  };
};
