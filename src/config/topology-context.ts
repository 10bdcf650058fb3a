/**
 * What the steps of resolving the binding graph share (topology.ts runs them in order): the
 * namespace, where problems go, and the files the config names, loaded once.
 */
import type { CompressionCodec } from "../kafka/protocol/compression.ts";
import type { UndecodablePolicy } from "../kafka/undecodable-batches.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import type { ConfigError } from "./config-error.ts";
import type { PemCertificate } from "./keystore.ts";
import type { Namespace, Store } from "./schema.ts";
import type { KafkaGroupTimings } from "./types.ts";

export interface TopologyOptions {
  /** Directory that catalog and vault paths are relative to (the config file's). */
  baseDir: string;
  registry: ServiceRegistry;
  /** Replaces the kafka client's `servers`. */
  kafkaServers?: string[];
  /** Replaces the kafka client's `compression` (`--kafka-compression`). */
  kafkaCompression?: CompressionCodec;
  /** Replaces the kafka client's `undecodable-batches` (`--kafka-undecodable-batches`). */
  kafkaUndecodableBatches?: UndecodablePolicy;
  /** Replaces group timings of the kafka client (`--kafka-session-timeout-ms` and the like). */
  kafkaGroup?: KafkaGroupTimings;
}

/** Records a problem at `path`; returns undefined so that a step can `return fail(...)`. */
export type Fail = (path: string, message: string) => undefined;

/** A vault's store, read and checked. */
export type LoadedStore =
  | { kind: "pkcs12"; file: string; bytes: Uint8Array; aliases: string[] }
  | { kind: "pem"; file: string; certificates: PemCertificate[] };

export interface TopologyContext {
  ns: Namespace;
  opts: TopologyOptions;
  registry: ServiceRegistry;
  /** Every problem found so far (some checks only report when nothing else failed). */
  errors: ConfigError[];
  fail: Fail;
  /** Service names declared by each catalog subject's proto, by "catalog/subject". */
  protoServices: Map<string, string[]>;
  /** The vaults' keystores and trust stores that could be read. */
  stores: Map<Store, LoadedStore>;
}
