/**
 * The gateway's Kafka handle, from the typed `kafka` binding config: the settings of the
 * gateway's own client (src/kafka/wire/), which carries all of its Kafka traffic, on a
 * kafkajs client for the same cluster (kafkajs is imported only under src/kafka/) that
 * tests and tools use as an independent referee; it opens no connection until asked. Also
 * the conversion between the record contract's header lists and kafkajs messages.
 */
import { type IHeaders, type KafkaConfig, Kafka as KafkaJs, logLevel, type Message } from "kafkajs";
import type { KafkaClientConfig } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import type { ContractRecord, RecordHeader } from "./record-contract.ts";
import type { WireSettings } from "./wire/wire-connection.ts";

/** The gateway's Kafka handle: a kafkajs client plus the settings of the gateway's own client. */
export type Kafka = KafkaJs & { readonly wire: WireSettings };

/** A client for the configured cluster, logging through `logger`. */
export function createKafka(
  config: KafkaClientConfig,
  logger: Logger,
  clientId = "zilla-gateway",
): Kafka {
  const kafkaConfig: KafkaConfig = {
    clientId: config.clientId ?? clientId,
    brokers: config.servers,
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      const { message, ...rest } = entry.log;
      const fields = { component: "kafkajs", namespace: entry.namespace, ...rest };
      if (entry.level <= logLevel.ERROR) logger.error(message, fields);
      else if (entry.level <= logLevel.WARN) logger.warn(message, fields);
      else logger.debug(message, fields);
    },
  };
  if (config.sasl) {
    const { mechanism, username, password } = config.sasl;
    kafkaConfig.sasl = { mechanism, username, password } as KafkaConfig["sasl"];
  }
  if (config.tls) {
    kafkaConfig.ssl = {
      ...(config.tls.ca ? { ca: config.tls.ca } : {}),
      ...(config.tls.cert ? { cert: config.tls.cert } : {}),
      ...(config.tls.key ? { key: config.tls.key } : {}),
      ...(config.tls.sni ? { servername: config.tls.sni } : {}),
      rejectUnauthorized: !config.tls.insecure,
    };
  }
  const wire: WireSettings = {
    servers: config.servers,
    clientId: kafkaConfig.clientId ?? clientId,
    connectTimeoutMs: 3_000,
    requestTimeoutMs: 30_000,
    retryTimeoutMs: 10_000,
    ...(config.sasl ? { sasl: config.sasl } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
  };
  return Object.assign(new KafkaJs(kafkaConfig), { wire });
}

// The Java-compatible murmur2 partitioner (SPEC §2: Kafka's standard partitioning).
export { createPartitioner } from "./murmur2-partitioner.ts";

/**
 * A contract record as a kafkajs message (header order preserved; repeated names grouped).
 * Without `timestamp` the record gets the wall clock when its batch is encoded: kafkajs
 * sorts explicit timestamps of a batch as strings, which costs more than the whole record.
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
