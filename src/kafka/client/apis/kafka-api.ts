/**
 * One Kafka API as the gateway's client speaks it: its key, the versions this client can
 * write and read (all non-flexible), a request writer and a response reader. Each API has
 * its own small module next to this one; `callApi` is how the client sends any of them.
 */
import { KafkaAnswerError } from "../../protocol/errors.ts";
import { type Reader, WireError, type Writer } from "../../protocol/wire.ts";
import type { WireConnection } from "../wire-connection.ts";

export interface KafkaApi<Request, Response> {
  key: number;
  /** The API's name, for errors and logs: "JoinGroup". */
  name: string;
  minVersion: number;
  maxVersion: number;
  writeRequest(w: Writer, version: number, request: Request): void;
  /**
   * Bytes the request body takes at most, when it can be large (Produce): its buffer is then
   * allocated once at that size instead of grown by copying.
   */
  requestBytes?(request: Request): number;
  readResponse(r: Reader, version: number): Response;
}

/**
 * Sends `request` at the highest version both sides speak and reads the answer; an answer
 * that cannot be read is a KafkaAnswerError. `extraWaitMs` extends the request timeout for
 * requests the broker may hold (JoinGroup).
 */
export async function callApi<Request, Response>(
  connection: WireConnection,
  api: KafkaApi<Request, Response>,
  request: Request,
  extraWaitMs = 0,
): Promise<Response> {
  const version = connection.version(api.key, api.minVersion, api.maxVersion);
  const r = await connection.request(
    api.key,
    version,
    (w) => api.writeRequest(w, version, request),
    extraWaitMs,
    api.requestBytes?.(request),
  );
  return readAnswer(api.name, connection.address, () => api.readResponse(r, version));
}

/** Runs a response reader, turning a malformed answer into a KafkaAnswerError. */
export function readAnswer<T>(apiName: string, address: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof WireError) {
      throw new KafkaAnswerError(`${address}: malformed ${apiName} answer: ${error.message}`);
    }
    throw error;
  }
}

/** Partitions per topic, as a request asked for them. */
export type AskedPartitions = ReadonlyMap<string, readonly number[]>;

/**
 * Checks that an answer names only partitions that were asked for and, where the API
 * answers each one (`complete`), leaves none out. Throws a KafkaAnswerError naming the
 * first partition that is wrong: a broker bug or a proxy in between, never to be taken as
 * the state of a partition.
 */
export function checkAnsweredPartitions(
  apiName: string,
  address: string,
  asked: AskedPartitions,
  answered: Iterable<{ topic: string; partition: number }>,
  complete: boolean,
): void {
  const seen = new Map<string, Set<number>>();
  for (const { topic, partition } of answered) {
    if (!asked.get(topic)?.includes(partition)) {
      throw new KafkaAnswerError(
        `${address}: ${apiName} answer names ${topic}-${partition}, which was not asked for`,
      );
    }
    let set = seen.get(topic);
    if (!set) {
      set = new Set();
      seen.set(topic, set);
    }
    set.add(partition);
  }
  if (!complete) return;
  for (const [topic, partitions] of asked) {
    for (const partition of partitions) {
      if (!seen.get(topic)?.has(partition)) {
        throw new KafkaAnswerError(
          `${address}: ${apiName} answer leaves out ${topic}-${partition}, which was asked for`,
        );
      }
    }
  }
}
