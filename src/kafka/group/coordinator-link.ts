/**
 * A group member's way to its coordinator: finds it (FindCoordinator, once for concurrent
 * callers), sends group requests on the lane they need, and forgets it when it stops
 * answering or says it is not the coordinator, so that the next request finds it again.
 */
import { findCoordinatorApi } from "../client/apis/find-coordinator.ts";
import { callApi, type KafkaApi } from "../client/apis/kafka-api.ts";
import { brokerAddress } from "../client/connection-pool.ts";
import type { KafkaCluster } from "../client/kafka-cluster.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import { KafkaConnectionError, KafkaProtocolError, kafkaCodeName } from "../protocol/errors.ts";
import { membershipReaction } from "./membership-reaction.ts";

export interface CoordinatorLink {
  /** Sends `request` to the coordinator (found first if need be) and returns its answer. */
  call<Request, Response>(
    api: KafkaApi<Request, Response>,
    request: Request,
    extraWaitMs?: number,
  ): Promise<Response>;
  /**
   * The error for an answer's error code, saying `what` was refused; a code that means the
   * coordinator moved makes the link forget it.
   */
  refusal(code: number, what: string): KafkaProtocolError;
  /** Forgets the coordinator: the next request finds it again. */
  forget(): void;
}

/** Creates the link of group `groupId`'s member. */
export function createCoordinatorLink(cluster: KafkaCluster, groupId: string): CoordinatorLink {
  let coordinator: number | undefined;
  let finding: Promise<number> | undefined;

  const find = async (): Promise<number> => {
    const connection = await cluster.anyBroker();
    const answer = await callApi(connection, findCoordinatorApi, { groupId });
    if (answer.error !== 0) {
      throw new KafkaProtocolError(
        answer.error,
        `no coordinator for group ${groupId}: ${kafkaCodeName(answer.error)}${answer.message ? ` (${answer.message})` : ""}`,
      );
    }
    cluster.addBroker(answer.node, brokerAddress(answer.host ?? "", answer.port));
    return answer.node;
  };

  const node = (): Promise<number> => {
    if (coordinator !== undefined) return Promise.resolve(coordinator);
    finding ??= find()
      .then((found) => {
        coordinator = found;
        return found;
      })
      .finally(() => {
        finding = undefined;
      });
    return finding;
  };

  return {
    async call(api, request, extraWaitMs = 0) {
      // The coordinator holds JoinGroup and SyncGroup until the group settles and answers a
      // connection's requests in order: heartbeats, commits and offset reads queued behind
      // them would time out (and take the join down with the connection). They go apart.
      const lane = api.key === ApiKey.JoinGroup || api.key === ApiKey.SyncGroup ? "group" : "main";
      const target = await node();
      try {
        const connection = await cluster.connection(target, lane);
        return await callApi(connection, api, request, extraWaitMs);
      } catch (error) {
        if (error instanceof KafkaConnectionError && coordinator === target)
          coordinator = undefined;
        throw error;
      }
    },
    refusal(code, what) {
      const error = new KafkaProtocolError(
        code,
        `${what} for group ${groupId} refused: ${kafkaCodeName(code)}`,
      );
      if (membershipReaction(error) === "find-coordinator") coordinator = undefined;
      return error;
    },
    forget() {
      coordinator = undefined;
    },
  };
}
