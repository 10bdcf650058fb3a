/**
 * CreateTopics (v0-v4), with validateOnly. A partition count of -1 means the broker's
 * default; a replication factor above 1 fails as it would on a one-broker Kafka. Of the
 * topic configs only cleanup.policy acts (compact, delete or both; see log/compaction.ts);
 * the others are accepted and ignored.
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { ApiHandler } from "../api.ts";
import { type BrokerState, createTopicLogged } from "../broker-state.ts";
import { validateTopicName } from "../log/topic-store.ts";

/** Partition counts beyond this are refused: every partition costs memory up front. */
const MAX_PARTITIONS = 10_000;

interface TopicRequest {
  name: string;
  numPartitions: number;
  replicationFactor: number;
  assignedPartitions: number;
  /** cleanup.policy as given (absent: delete). */
  cleanupPolicy: string | null;
}

const CLEANUP_POLICIES = new Set(["compact", "delete"]);

interface TopicResult {
  name: string;
  errorCode: number;
  errorMessage: string | null;
}

/** The CreateTopics handler. */
export function createCreateTopicsHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.CreateTopics,
    name: "CreateTopics",
    minVersion: 0,
    maxVersion: 4,
    firstFlexibleVersion: 5,
    handle(req, ctx) {
      const version = ctx.apiVersion;
      const requests = req.array<TopicRequest>((r) => {
        const name = r.string();
        const numPartitions = r.int32();
        const replicationFactor = r.int16();
        const assignments = r.array((a) => {
          a.int32(); // partition index
          a.array((b) => b.int32()); // broker ids
        });
        let cleanupPolicy: string | null = null;
        r.array((c) => {
          const config = c.string();
          const value = c.nullableString();
          if (config === "cleanup.policy") cleanupPolicy = value;
        });
        return {
          name,
          numPartitions,
          replicationFactor,
          assignedPartitions: assignments.length,
          cleanupPolicy,
        };
      });
      req.int32(); // timeout
      const validateOnly = version >= 1 ? req.bool() : false;

      const counts = new Map<string, number>();
      for (const r of requests) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
      const results = requests.map((r): TopicResult => {
        const fail = (errorCode: number, errorMessage: string): TopicResult => ({
          name: r.name,
          errorCode,
          errorMessage,
        });
        if (ctx.injectedError !== undefined) return fail(ctx.injectedError, "injected fault");
        if ((counts.get(r.name) ?? 0) > 1) {
          return fail(ErrorCode.INVALID_REQUEST, `Create topics request lists ${r.name} twice`);
        }
        const illegal = validateTopicName(r.name);
        if (illegal !== null) return fail(ErrorCode.INVALID_TOPIC_EXCEPTION, illegal);
        if (state.topics.get(r.name) !== undefined) {
          return fail(ErrorCode.TOPIC_ALREADY_EXISTS, `Topic '${r.name}' already exists.`);
        }
        const partitions =
          r.assignedPartitions > 0
            ? r.assignedPartitions
            : r.numPartitions === -1
              ? state.defaultPartitions
              : r.numPartitions;
        if (partitions <= 0 || partitions > MAX_PARTITIONS) {
          return fail(
            ErrorCode.INVALID_PARTITIONS,
            `Number of partitions must be between 1 and ${MAX_PARTITIONS}, got ${partitions}.`,
          );
        }
        if (r.replicationFactor === 0 || r.replicationFactor < -1) {
          return fail(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be positive.");
        }
        if (r.replicationFactor > 1) {
          return fail(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            `Replication factor: ${r.replicationFactor} larger than available brokers: 1.`,
          );
        }
        const policies = (r.cleanupPolicy ?? "delete").split(",").map((p) => p.trim());
        if (policies.some((p) => !CLEANUP_POLICIES.has(p))) {
          return fail(
            ErrorCode.INVALID_CONFIG,
            `Invalid value ${r.cleanupPolicy} for configuration cleanup.policy: each must be compact or delete.`,
          );
        }
        const policy = { compact: policies.includes("compact") };
        if (!validateOnly) createTopicLogged(state, r.name, partitions, policy);
        return { name: r.name, errorCode: ErrorCode.NONE, errorMessage: null };
      });
      return (w) => {
        if (version >= 2) w.int32(0); // throttle time
        w.array(results, (w, t) => {
          w.string(t.name).int16(t.errorCode);
          if (version >= 1) w.nullableString(t.errorMessage);
        });
      };
    },
  };
}
