/**
 * The record contract between north and west (docs/contract.md: Request records, Reply records, Where we differ from Zilla): which headers a request
 * or reply record carries, in which order, and how to read them back. Pure functions over
 * plain header lists; the Kafka client lives elsewhere.
 */
import type { CorrelationHeaders, ProduceWith } from "../config/types.ts";
import { ATTEMPT, DEADLINE, MESSAGE, META_PREFIX, STATUS } from "./header-names.ts";

/** One Kafka header; values are UTF-8 text in this contract. */
export type RecordHeader = readonly [name: string, value: string];

/** A record as the contract sees it; `value: null` is a tombstone. */
export interface ContractRecord {
  key: string | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
}

/**
 * About what a record takes in a batch (a little more, never less): what keeps a producer's
 * batches under the broker's size limit (Kafka's `message.max.bytes`, about 1 MB).
 */
export function approxRecordBytes(record: ContractRecord): number {
  let bytes = 70 + (record.key?.length ?? 0) + (record.value?.byteLength ?? 0);
  for (const [name, value] of record.headers) bytes += name.length + value.length + 4;
  return bytes;
}

/**
 * Request headers that are transport, not metadata, and so never become `meta:*`
 * (the contract's request records list the gRPC ones; the Connect, gRPC-Web and browser ones are the same kind
 * for the other protocols of the front door, so a browser call writes the same record).
 */
const transportHeaders = new Set([
  "te",
  "content-type",
  "user-agent",
  "service-name",
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "accept",
  "accept-encoding",
  "accept-language",
  "content-encoding",
  "origin",
  "referer",
  "x-grpc-web",
  "x-user-agent",
]);

/** Whether a request header is gRPC metadata to carry as `meta:<name>` (docs/contract.md: Request records, difference 1). */
export function isRequestMetadata(name: string): boolean {
  const n = name.toLowerCase();
  if (n.startsWith(":") || transportHeaders.has(n)) return false;
  if (n.startsWith("grpc-") || n.startsWith("connect-") || n.startsWith("sec-")) return false;
  if (n.startsWith("access-control-")) return false;
  return true;
}

/** Response metadata that is transport, not the upstream's own metadata. */
export function isResponseMetadata(name: string): boolean {
  const n = name.toLowerCase();
  if (n.startsWith(":") || n.startsWith("grpc-") || n.startsWith("connect-")) return false;
  return !transportHeaders.has(n) && n !== "date" && n !== "server" && n !== "vary";
}

/**
 * `meta:<name>` headers for the metadata entries that are metadata (names lower-cased),
 * leaving out any whose header a route override writes: a client cannot supply a header
 * the gateway sets (e.g. the caller's identity as `meta:x-user`).
 */
export function metadataHeaders(
  metadata: Iterable<readonly [string, string]>,
  reserved?: ReadonlySet<string>,
  out: RecordHeader[] = [],
): RecordHeader[] {
  for (const [name, value] of metadata) {
    if (!isRequestMetadata(name)) continue;
    const header = metaHeaderName(name);
    if (reserved?.has(header)) continue;
    out.push([header, value]);
  }
  return out;
}

/** `meta:<name>` by metadata name, so that calls share the strings (a bounded cache). */
const metaNames = new Map<string, string>();
const maxMetaNames = 1024;

function metaHeaderName(name: string): string {
  let header = metaNames.get(name);
  if (header === undefined) {
    header = META_PREFIX + name.toLowerCase();
    // Names are the clients' to choose: past the bound they are made afresh, not kept.
    if (metaNames.size < maxMetaNames) metaNames.set(name, header);
  }
  return header;
}

/** What a route's overrides write: its headers in config order, and the `meta:*` names among them. */
interface RouteOverrides {
  headers: readonly RecordHeader[];
  metaNames: ReadonlySet<string> | undefined;
}

/** Per route object (it lives as long as its config): worked out once, not per call. */
const routeOverrides = new WeakMap<ProduceWith, RouteOverrides>();
const noOverrides: RouteOverrides = { headers: [], metaNames: undefined };

function overridesOf(route: ProduceWith): RouteOverrides {
  if (!route.overrides) return noOverrides;
  let known = routeOverrides.get(route);
  if (known === undefined) {
    const headers = Object.entries(route.overrides);
    const names = headers.map(([name]) => name).filter((n) => n.startsWith(META_PREFIX));
    known = { headers, metaNames: names.length > 0 ? new Set(names) : undefined };
    routeOverrides.set(route, known);
  }
  return known;
}

export interface RequestHeadersInput {
  route: ProduceWith;
  names: CorrelationHeaders;
  service: string;
  method: string;
  correlationId: string;
  /** Absolute deadline, epoch ms (docs/contract.md: difference 2). */
  deadlineMs?: number | undefined;
  /** This caller's attempt of a keyed call (ATTEMPT); absent on un-keyed calls. */
  attemptId?: string | undefined;
  metadata: Iterable<readonly [string, string]>;
}

/** The headers of every request record of a call, in contract order (docs/contract.md: Request records). */
export function requestHeaders(input: RequestHeadersInput): RecordHeader[] {
  const { route, names } = input;
  const out: RecordHeader[] = [];
  const overrides = overridesOf(route);
  // Overrides are the route's, and per caller where they name the caller's identity.
  for (const header of overrides.headers) out.push(header);
  if (route.replyTo !== undefined) {
    for (const header of callingHeaders(names, route.replyTo, input.service, input.method)) {
      out.push(header);
    }
    out.push([names.correlationId, input.correlationId]);
    if (input.deadlineMs !== undefined) out.push([DEADLINE, String(Math.floor(input.deadlineMs))]);
    if (input.attemptId !== undefined) out.push([ATTEMPT, input.attemptId]);
  }
  return metadataHeaders(input.metadata, overrides.metaNames, out);
}

/**
 * The service, method and reply-to headers, the same for every call of a method to a reply
 * topic, made once (by header names, reply topic and method: all from the config and the
 * served methods, so the cache is bounded). A pending call holds its record headers; these
 * need not be its own.
 */
const callingHeaderCache = new WeakMap<
  CorrelationHeaders,
  Map<string, Map<string, Map<string, readonly RecordHeader[]>>>
>();

/** The map kept under `key` in `parent`, made on first use. */
function mapIn<V>(parent: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let child = parent.get(key);
  if (child === undefined) {
    child = new Map();
    parent.set(key, child);
  }
  return child;
}

function callingHeaders(
  names: CorrelationHeaders,
  replyTo: string,
  service: string,
  method: string,
): readonly RecordHeader[] {
  // By reply topic, then service, then method: no key string made per call.
  let byTopic = callingHeaderCache.get(names);
  if (byTopic === undefined) {
    byTopic = new Map();
    callingHeaderCache.set(names, byTopic);
  }
  const byMethod = mapIn(mapIn(byTopic, replyTo), service);
  let headers = byMethod.get(method);
  if (headers === undefined) {
    headers = [
      [names.service, service],
      [names.method, method],
      [names.replyTo, replyTo],
    ];
    byMethod.set(method, headers);
  }
  return headers;
}

/** The key of every request record of a call: the route's key, else the correlation id. */
export function requestKey(route: ProduceWith, correlationId: string): string {
  return route.key ?? correlationId;
}

/** What west reads off a request record. */
export interface ParsedRequest {
  service?: string;
  method?: string;
  replyTo?: string;
  correlationId?: string;
  deadlineMs?: number;
  /** The caller's attempt (ATTEMPT), when north tagged it. */
  attemptId?: string;
  /** Metadata entries from `meta:*` headers, names without the prefix, in record order. */
  metadata: [string, string][];
  /** Every header (the record's own array), for route matching on `headers`. */
  headers: readonly RecordHeader[];
}

/** Reads a request record's headers (docs/contract.md: Request records); unknown headers are kept in `headers`. */
export function parseRequestHeaders(
  headers: readonly RecordHeader[],
  names: CorrelationHeaders,
): ParsedRequest {
  const parsed: ParsedRequest = { metadata: [], headers };
  for (const [name, value] of headers) {
    if (name === names.service) parsed.service = value;
    else if (name === names.method) parsed.method = value;
    else if (name === names.replyTo) parsed.replyTo = value;
    else if (name === names.correlationId) parsed.correlationId = value;
    else if (name === DEADLINE) {
      const ms = Number(value);
      if (Number.isFinite(ms) && ms > 0) parsed.deadlineMs = ms;
    } else if (name === ATTEMPT) parsed.attemptId = value;
    else if (name.startsWith(META_PREFIX)) {
      parsed.metadata.push([name.slice(META_PREFIX.length), value]);
    }
  }
  return parsed;
}

/** Headers of a reply message record: the correlation id, then the response metadata. */
export function replyHeaders(
  names: CorrelationHeaders,
  correlationId: string,
  metadata: Iterable<readonly [string, string]> = [],
): RecordHeader[] {
  const out: RecordHeader[] = [[names.correlationId, correlationId]];
  for (const [name, value] of metadata) {
    if (isResponseMetadata(name)) out.push([META_PREFIX + name.toLowerCase(), value]);
  }
  return out;
}

/** Headers of a reply's end tombstone: correlation id, status and optional message (docs/contract.md: Reply records). */
export function replyEndHeaders(
  names: CorrelationHeaders,
  correlationId: string,
  code: number,
  message?: string,
  metadata: Iterable<readonly [string, string]> = [],
  attemptId?: string,
): RecordHeader[] {
  const out = replyHeaders(names, correlationId, metadata);
  out.splice(1, 0, [STATUS, String(code)]);
  if (message) out.splice(2, 0, [MESSAGE, message]);
  // West's own answer to one attempt of a keyed call: other attempts with the id ignore it.
  if (attemptId !== undefined) out.push([ATTEMPT, attemptId]);
  return out;
}

/** What north reads off a reply record. */
export interface ParsedReply {
  correlationId?: string;
  /** Present on the end tombstone; absent = OK (docs/contract.md: North). */
  status?: number;
  message?: string;
  /** The attempt this answer belongs to (ATTEMPT); absent: every attempt's. */
  attemptId?: string;
  metadata: [string, string][];
}

/** Reads a reply record's headers (docs/contract.md: Reply records). */
export function parseReplyHeaders(
  headers: readonly RecordHeader[],
  names: CorrelationHeaders,
): ParsedReply {
  const parsed: ParsedReply = { metadata: [] };
  for (const [name, value] of headers) {
    if (name === names.correlationId) parsed.correlationId = value;
    else if (name === STATUS) {
      const code = Number(value);
      parsed.status = Number.isInteger(code) && code >= 0 && code <= 16 ? code : 2;
    } else if (name === MESSAGE) parsed.message = value;
    else if (name === ATTEMPT) parsed.attemptId = value;
    else if (name.startsWith(META_PREFIX)) {
      parsed.metadata.push([name.slice(META_PREFIX.length), value]);
    }
  }
  return parsed;
}
