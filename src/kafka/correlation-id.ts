import { createHash, randomUUID } from "node:crypto";
import type { CorrelationHeaders } from "../config/types.ts";

export interface CorrelationInput {
  /** The request's idempotency key metadata, if it sent one. */
  idempotencyKey?: string | undefined;
  service: string;
  method: string;
  /** The route's reply topic; absent for oneway routes. */
  replyTo?: string | undefined;
  /** The route's override values, in config order (names are not hashed). */
  overrideValues?: readonly string[] | undefined;
  headers: CorrelationHeaders;
  /**
   * On a guarded route, each guard's caller identity in the route's `guarded` order: it scopes
   * the id to the caller, so two callers with one idempotency key never share a reply.
   */
  guarded?: ReadonlyArray<readonly [guard: string, identity: string]> | undefined;
}

const utf8 = new TextEncoder();

/** The text the correlation id hashes (docs/contract.md: The correlation id): header names and values of the route, then override values. */
export function correlationHashInput(input: CorrelationInput): string {
  let text = "";
  if (input.replyTo !== undefined) {
    text += input.headers.service + input.service;
    text += input.headers.method + input.method;
    text += input.headers.replyTo + input.replyTo;
  }
  for (const value of input.overrideValues ?? []) text += value;
  // Not part of Zilla's input: a length-prefixed identity per guard (docs/guards.md).
  for (const [guard, identity] of input.guarded ?? []) {
    text += `guarded:${guard}:${utf8.encode(identity).byteLength}:${identity}`;
  }
  return text;
}

// The hashed text depends only on the route, service and method, so a gateway sees a few
// distinct ones: their digests are kept (bounded, in case names come from clients).
const digests = new Map<string, string>();
const digestsMax = 4096;

/**
 * `prefix-md5hex(hashInput)`; prefix is the idempotency key, else a random v4 UUID (docs/contract.md: The correlation id),
 * drawn by `chooseUuid` when given (it gets the MD5 hex, the rest of the id, to place the id).
 */
export function createCorrelationId(
  input: CorrelationInput,
  chooseUuid?: (digest: string) => string,
): string {
  return correlationIdOf(correlationDigest(input), input.idempotencyKey, chooseUuid);
}

/**
 * `prefix-digest`: the prefix is the idempotency key, else the UUID `chooseUuid` draws for the
 * digest, else a random v4 UUID.
 */
export function correlationIdOf(
  digest: string,
  idempotencyKey: string | undefined,
  chooseUuid?: (digest: string) => string,
): string {
  const prefix = idempotencyKey ?? (chooseUuid ? chooseUuid(digest) : randomUUID());
  return `${prefix}-${digest}`;
}

/** The MD5 hex of `correlationHashInput(input)`: the part of the id after its prefix. */
export function correlationDigest(input: CorrelationInput): string {
  const text = correlationHashInput(input);
  let digest = digests.get(text);
  if (digest === undefined) {
    digest = createHash("md5").update(text, "utf8").digest("hex");
    // One text per caller on guarded routes: not worth keeping.
    if (input.guarded === undefined || input.guarded.length === 0) {
      if (digests.size >= digestsMax) digests.clear();
      digests.set(text, digest);
    }
  }
  return digest;
}

/**
 * Digests kept per route (an object that lives as long as its config), then service, then
 * method: what most calls ask, found without building the hashed text. Only for calls without
 * guard identities (those hash the caller too).
 */
const routeDigests = new WeakMap<object, Map<string, Map<string, string>>>();

/**
 * `correlationDigest(input)` for a call of `route`, remembered per route, service and method
 * (bounded like the text cache: the service and method come from the generated code's routes).
 */
export function routeCorrelationDigest(route: object, input: CorrelationInput): string {
  if (input.guarded !== undefined && input.guarded.length > 0) return correlationDigest(input);
  let services = routeDigests.get(route);
  if (services === undefined) {
    services = new Map();
    routeDigests.set(route, services);
  }
  let methods = services.get(input.service);
  if (methods === undefined) {
    if (services.size >= digestsMax) services.clear();
    methods = new Map();
    services.set(input.service, methods);
  }
  let digest = methods.get(input.method);
  if (digest === undefined) {
    if (methods.size >= digestsMax) methods.clear();
    digest = correlationDigest(input);
    methods.set(input.method, digest);
  }
  return digest;
}
