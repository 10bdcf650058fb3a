/**
 * Route selection for west (docs/contract.md: West): a request record matches a `kafka-grpc` route when
 * one of its `when` items matches topic, reply-to, key, headers and method. First match wins.
 */
import type { KafkaGrpcRoute, KafkaGrpcWhen } from "../config/types.ts";
import type { RecordHeader } from "../kafka/record-contract.ts";
import { methodPartsMatch } from "../service-registry.ts";

/** What a request record offers to route matching. */
export interface RouteInput {
  topic: string;
  key: string | null;
  headers: readonly RecordHeader[];
  replyTo?: string | undefined;
  service?: string | undefined;
  method?: string | undefined;
}

/**
 * The first route whose `when` matches. With `ignoreMethod`, method conditions are not
 * checked (a record without service/method still needs a route to learn it may answer).
 */
export function matchWestRoute(
  routes: readonly KafkaGrpcRoute[],
  input: RouteInput,
  ignoreMethod = false,
): KafkaGrpcRoute | undefined {
  return routes.find((route) => route.when.some((when) => whenMatches(when, input, ignoreMethod)));
}

/** Every topic some route consumes, in config order without repeats. */
export function westTopics(routes: readonly KafkaGrpcRoute[]): string[] {
  return [...new Set(routes.flatMap((route) => route.when.map((when) => when.topic)))];
}

function whenMatches(when: KafkaGrpcWhen, input: RouteInput, ignoreMethod: boolean): boolean {
  if (when.topic !== input.topic || when.replyTo !== input.replyTo) return false;
  if (when.key !== undefined && when.key !== input.key) return false;
  if (when.headers !== undefined) {
    for (const name in when.headers) {
      const value = when.headers[name];
      if (!hasHeader(input.headers, name, value)) return false;
    }
  }
  if (when.method === undefined || ignoreMethod) return true;
  if (input.service === undefined || input.method === undefined) return false;
  return methodPartsMatch(when.method, input.service, input.method);
}

function hasHeader(headers: readonly RecordHeader[], name: string, value: unknown): boolean {
  for (const [n, v] of headers) if (n === name && v === value) return true;
  return false;
}
