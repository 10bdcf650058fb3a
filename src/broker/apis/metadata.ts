/**
 * Metadata (v0-v8): this broker is the controller and the leader, only replica and only
 * in-sync replica of every partition. Unknown topics are created on the fly when the
 * broker allows it and the request does (v4+ asks explicitly; older versions always do).
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { type Reader, WireError } from "../../kafka/protocol/wire.ts";
import type { ApiHandler } from "../api.ts";
import { type BrokerState, createTopicLogged } from "../broker-state.ts";
import type { Topic } from "../log/topic-store.ts";
import { validateTopicName } from "../log/topic-store.ts";

/** "No authorized operations were requested" (Kafka's INT32_MIN sentinel). */
const OPERATIONS_OMITTED = -2147483648;

interface TopicAnswer {
  name: string;
  errorCode: number;
  partitionCount: number;
}

/** A classic nullable array of strings; null means "all topics". */
function readTopicNames(req: Reader): string[] | null {
  const count = req.int32();
  if (count < 0) return null;
  if (count > req.remaining) throw new WireError(`${count} topic names in ${req.remaining} bytes`);
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(req.string());
  return names;
}

function answerFor(topic: Topic, errorCode: number): TopicAnswer {
  return { name: topic.name, errorCode, partitionCount: topic.partitions.length };
}

/** The Metadata handler. */
export function createMetadataHandler(state: BrokerState): ApiHandler {
  return {
    apiKey: ApiKey.Metadata,
    name: "Metadata",
    minVersion: 0,
    maxVersion: 8,
    firstFlexibleVersion: 9,
    handle(req, ctx) {
      const version = ctx.apiVersion;
      let names = readTopicNames(req);
      // v0 has no null array: an empty list means every topic.
      if (version === 0 && names !== null && names.length === 0) names = null;
      const allowAutoCreate = version >= 4 ? req.bool() : true;
      if (version >= 8) {
        req.bool(); // include cluster authorized operations
        req.bool(); // include topic authorized operations
      }
      const injected = ctx.injectedError;
      const answers: TopicAnswer[] = [];
      if (names === null) {
        for (const topic of state.topics.all()) {
          answers.push(answerFor(topic, injected ?? ErrorCode.NONE));
        }
      } else {
        for (const name of names) {
          if (injected !== undefined) {
            answers.push({ name, errorCode: injected, partitionCount: 0 });
            continue;
          }
          const existing = state.topics.get(name);
          if (existing !== undefined) {
            answers.push(answerFor(existing, ErrorCode.NONE));
          } else if (state.autoCreateTopics && allowAutoCreate) {
            if (validateTopicName(name) !== null) {
              answers.push({
                name,
                errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION,
                partitionCount: 0,
              });
            } else {
              const created = createTopicLogged(state, name, state.defaultPartitions);
              answers.push(answerFor(created, ErrorCode.NONE));
            }
          } else {
            answers.push({
              name,
              errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
              partitionCount: 0,
            });
          }
        }
      }
      const { nodeId, host, port, clusterId } = ctx.broker;
      return (w) => {
        if (version >= 3) w.int32(0); // throttle time
        w.int32(1); // brokers
        w.int32(nodeId).string(host).int32(port);
        if (version >= 1) w.nullableString(null); // rack
        if (version >= 2) w.nullableString(clusterId);
        if (version >= 1) w.int32(nodeId); // controller
        w.array(answers, (w, topic) => {
          w.int16(topic.errorCode).string(topic.name);
          if (version >= 1) w.bool(false); // internal
          w.int32(topic.partitionCount);
          for (let p = 0; p < topic.partitionCount; p++) {
            w.int16(ErrorCode.NONE).int32(p).int32(nodeId);
            if (version >= 7) w.int32(0); // leader epoch
            w.int32(1).int32(nodeId); // replicas
            w.int32(1).int32(nodeId); // in-sync replicas
            if (version >= 5) w.int32(0); // offline replicas
          }
          if (version >= 8) w.int32(OPERATIONS_OMITTED);
        });
        if (version >= 8) w.int32(OPERATIONS_OMITTED);
      };
    },
  };
}
