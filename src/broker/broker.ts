/**
 * The embedded, single-node, Kafka-wire-compatible broker: in-memory topics, served over
 * real TCP to real Kafka clients (kafkajs, librdkafka). For tests, benchmarks and the
 * gateway's embedded default.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { ApiHandler, BrokerInfo } from "./api.ts";
import { type ApiVersionCaps, createApiVersionsHandler } from "./apis/api-versions.ts";
import { createCreateTopicsHandler } from "./apis/create-topics.ts";
import { createDeleteTopicsHandler } from "./apis/delete-topics.ts";
import { createFetchHandler } from "./apis/fetch.ts";
import { createInitProducerIdHandler } from "./apis/init-producer-id.ts";
import { createListOffsetsHandler } from "./apis/list-offsets.ts";
import { createMetadataHandler } from "./apis/metadata.ts";
import { createProduceHandler } from "./apis/produce.ts";
import { type BrokerSaslOptions, createBrokerSasl } from "./apis/sasl.ts";
import { BrokerConnection } from "./broker-connection.ts";
import { type BrokerFaults, FaultState } from "./broker-faults.ts";
import { type BrokerState, createTopicLogged } from "./broker-state.ts";
import { createDispatcher } from "./dispatcher.ts";
import { createGroupCoordinator } from "./group-coordinator.ts";
import type { RetentionLimits } from "./log/partition-log.ts";
import { TopicStore, validateTopicName } from "./log/topic-store.ts";

/** How to run the broker; every field is optional. */
export interface BrokerOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  nodeId?: number;
  /** Partitions of auto-created topics (default 1). */
  defaultPartitions?: number;
  /** Create unknown topics when a client asks for their metadata (default true). */
  autoCreateTopics?: boolean;
  /** Per-partition size limit; whole batches are dropped from the head beyond it. */
  retentionBytes?: number;
  /** Per-partition age limit (by append time). */
  retentionMs?: number;
  /**
   * Largest record batch a Produce may write, as Kafka's `message.max.bytes` (Kafka's own
   * default is 1,048,588): a larger batch is refused with MESSAGE_TOO_LARGE. Default: none.
   */
  maxMessageBytes?: number;
  /** Passed to the group coordinator (default 0). */
  initialRebalanceDelayMs?: number;
  /**
   * What ApiVersions advertises per API key (tests impersonate other brokers): a number caps
   * the highest version (negative: the API is left out), a pair replaces the range. Requests
   * are still served at every version the broker has.
   */
  apiVersionCaps?: ApiVersionCaps;
  /**
   * Require SASL (PLAIN, SCRAM-SHA-256/512) from every connection before any API but
   * ApiVersions and the SASL ones; `users` maps names to passwords.
   */
  sasl?: BrokerSaslOptions;
  /** Serve TLS with this PEM certificate (chain) and key, on the same port. */
  tls?: { cert: string; key: string };
  log?: (line: string) => void;
}

/** A running broker. */
export interface Broker {
  /** "host:port", for client configs. */
  bootstrap: string;
  host: string;
  port: number;
  close(): Promise<void>;
  faults: BrokerFaults;
  /**
   * Creates a topic directly (tests); does nothing if it already exists. With `compact`,
   * like cleanup.policy=compact (see log/compaction.ts).
   */
  createTopic(name: string, partitions: number, options?: { compact?: boolean }): void;
  /** Compacts the compacted topics now (tests; it also happens as batches come in). */
  compact(): void;
  /** Adds partitions to a topic until it has `partitions` (tests); never removes any. */
  growTopic(name: string, partitions: number): void;
  /**
   * Changes the per-partition age limit of every topic (`undefined`: none), as
   * `retentionMs` at start; the next check applies it (the bench shortens it while load
   * runs, see bench/processes/broker.ts).
   */
  setRetentionMs(ms: number | undefined): void;
}

/** Age retention is checked this often at most (and at least once per quarter limit). */
const MAX_RETENTION_CHECK_MS = 1000;
const MIN_RETENTION_CHECK_MS = 10;

/** Clients connect to the advertised address; a wildcard listen address is not one. */
function advertisedHost(host: string): string {
  return host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
}

/** A cluster id in Kafka's form: 16 random bytes as unpadded base64url (22 characters). */
function newClusterId(): string {
  const hex = randomUUID().replaceAll("-", "");
  return Buffer.from(hex, "hex").toString("base64url");
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

/**
 * Throws unless `value` is a positive integer (or absent): partition counts, and retention
 * limits, where 0 would drop every batch as it arrives. `unit` names what it counts.
 */
function checkPositiveInteger(name: string, value: number | undefined, unit?: string): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
    const what = unit === undefined ? "a positive integer" : `a positive integer of ${unit}`;
    throw new RangeError(`${name} must be ${what}, got ${value}`);
  }
}

/** Starts a broker listening on `host:port`; resolves once it accepts connections. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const host = options.host ?? "127.0.0.1";
  const log = options.log ?? (() => {});
  const defaultPartitions = options.defaultPartitions ?? 1;
  checkPositiveInteger("defaultPartitions", defaultPartitions);
  checkPositiveInteger("retentionBytes", options.retentionBytes, "bytes");
  checkPositiveInteger("retentionMs", options.retentionMs, "milliseconds");
  // One object every partition log reads its limits from, so setRetentionMs reaches them all.
  const limits: RetentionLimits = {
    retentionBytes: options.retentionBytes,
    retentionMs: options.retentionMs,
  };
  const topics = new TopicStore(limits);
  const state: BrokerState = {
    topics,
    defaultPartitions,
    autoCreateTopics: options.autoCreateTopics ?? true,
    maxMessageBytes: options.maxMessageBytes ?? Number.POSITIVE_INFINITY,
    nextProducerId: 1000,
    log,
  };

  const connections = new Set<BrokerConnection>();
  const sockets = new Set<Socket>();
  const server = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key })
    : createServer();
  const port = await listen(server, options.port ?? 0, host);
  const faults = new FaultState({
    dropConnections: () => {
      for (const socket of sockets) socket.destroy();
    },
    pausedChanged: () => {
      for (const connection of connections) connection.pausedChanged();
    },
    stopListening: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
    startListening: async () => {
      await listen(server, port, host);
    },
  });
  const info: BrokerInfo = {
    nodeId: options.nodeId ?? 1,
    host: advertisedHost(host),
    port,
    clusterId: newClusterId(),
  };

  const handlers: ApiHandler[] = [
    createProduceHandler(state, faults),
    createFetchHandler(state),
    createListOffsetsHandler(state),
    createMetadataHandler(state),
    createCreateTopicsHandler(state),
    createDeleteTopicsHandler(state),
    createInitProducerIdHandler(state),
  ];
  const coordinator = createGroupCoordinator({
    initialRebalanceDelayMs: options.initialRebalanceDelayMs ?? 0,
    partitionExists: (topic, partition) => topics.partition(topic, partition) !== undefined,
    topicPartitions: (topic) => topics.get(topic)?.partitions.length,
  });
  handlers.push(...coordinator.handlers);
  // The SASL APIs are advertised only when required: a client that asks for SASL from a
  // broker without it then learns so from ApiVersions instead of failing mid-handshake.
  const sasl = options.sasl ? createBrokerSasl(options.sasl, log) : undefined;
  if (sasl) handlers.push(...sasl.handlers);
  handlers.push(createApiVersionsHandler(() => handlers, options.apiVersionCaps));
  const dispatcher = createDispatcher(handlers, info, faults, log, sasl?.gate);
  const connectionHost = { dispatcher, faults, log, arena: topics.arena };

  let nextConnectionId = 1;
  const serve = (socket: Socket): void => {
    sockets.add(socket);
    const connection = new BrokerConnection(socket, nextConnectionId++, connectionHost, () => {
      sockets.delete(socket);
      connections.delete(connection);
    });
    connections.add(connection);
  };
  if (options.tls) {
    // The TCP sockets are tracked from the start, so that close() and dropConnections()
    // also end connections still in (or stuck in) their TLS handshake.
    server.on("connection", (raw: Socket) => {
      sockets.add(raw);
      raw.once("close", () => sockets.delete(raw));
    });
    server.on("secureConnection", serve);
    server.on("tlsClientError", (err, socket) =>
      log(`TLS handshake with ${socket.remoteAddress ?? "?"} failed: ${err.message}`),
    );
  } else {
    server.on("connection", serve);
  }

  let retentionTimer: ReturnType<typeof setInterval> | undefined;
  const armRetentionCheck = (retentionMs: number | undefined) => {
    clearInterval(retentionTimer);
    retentionTimer = undefined;
    if (retentionMs === undefined) return;
    const every = Math.min(
      MAX_RETENTION_CHECK_MS,
      Math.max(MIN_RETENTION_CHECK_MS, retentionMs / 4),
    );
    retentionTimer = setInterval(() => topics.enforceRetention(), every);
    retentionTimer.unref();
  };
  armRetentionCheck(options.retentionMs);

  let closing: Promise<void> | undefined;
  return {
    bootstrap: `${info.host}:${port}`,
    host: info.host,
    port,
    faults,
    createTopic(name, partitions, options) {
      const illegal = validateTopicName(name);
      if (illegal !== null) throw new Error(illegal);
      checkPositiveInteger("partitions", partitions);
      if (topics.get(name) === undefined) {
        createTopicLogged(state, name, partitions, { compact: options?.compact === true });
      }
    },
    compact() {
      topics.compactAll();
    },
    growTopic(name, partitions) {
      if (topics.get(name) === undefined) throw new Error(`no topic ${name}`);
      topics.grow(name, partitions);
      log(`topic ${name} grown to ${partitions} partitions`);
    },
    setRetentionMs(ms) {
      checkPositiveInteger("retention", ms, "milliseconds");
      limits.retentionMs = ms;
      // A closed broker keeps no timer.
      if (closing === undefined) armRetentionCheck(ms);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(retentionTimer);
        coordinator.close();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        topics.close();
      });
      return closing;
    },
  };
}
