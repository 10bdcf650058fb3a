/**
 * Produce's handling of the request's array: a batch under ARENA_MAX_BATCH_BYTES is copied
 * into the log's memory whatever array it came in; a larger one of a request alone in its
 * array (assembled from several reads) is kept as a view, and one of a request sharing a
 * socket chunk with other bytes is copied out, so the log pins nothing else. Every way the
 * stored batch is the sent one with the broker's base offset and a CRC that still checks.
 */
import { describe, expect, it } from "vitest";
import {
  batchBaseOffset,
  encodeRecordBatch,
  parseBatchHeader,
} from "../../kafka/protocol/record-batch.ts";
import { Reader, Writer } from "../../kafka/protocol/wire.ts";
import type { RequestContext } from "../api.ts";
import type { BrokerState } from "../broker-state.ts";
import { ARENA_MAX_BATCH_BYTES } from "../log/batch-arena.ts";
import { TopicStore } from "../log/topic-store.ts";
import { createProduceHandler, ownsItsArray } from "./produce.ts";

function newState(): BrokerState {
  const topics = new TopicStore();
  topics.create("t", 1);
  return {
    topics,
    defaultPartitions: 1,
    autoCreateTopics: false,
    maxMessageBytes: Number.POSITIVE_INFINITY,
    nextProducerId: 1000,
    log: () => {},
  };
}

const ctx: RequestContext = {
  apiKey: 0,
  apiVersion: 8,
  correlationId: 1,
  clientId: null,
  flexible: false,
  connectionId: 1,
  broker: { nodeId: 0, host: "127.0.0.1", port: 9092, clusterId: "test" },
};

/** A Produce v8 body (after the request header) writing `batch` to t/0. */
function produceBody(batch: Uint8Array): Uint8Array {
  const w = new Writer(batch.length + 64);
  w.nullableString(null).int16(-1).int32(1000);
  w.int32(1).string("t").int32(1).int32(0).int32(batch.length).raw(batch);
  return w.bytesView().slice();
}

/** Produces `body` (an array as the connection would hand it over) and returns what t/0 holds. */
function produce(state: BrokerState, body: Uint8Array): Uint8Array[] {
  const handler = createProduceHandler(state);
  expect(handler.handle(new Reader(body), ctx)).not.toBeNull();
  const log = state.topics.partition("t", 0);
  return log?.read(0, Number.POSITIVE_INFINITY, true).batches ?? [];
}

const value = new Uint8Array(ARENA_MAX_BATCH_BYTES).map((_, i) => i * 7);
const smallValue = value.subarray(0, 10_240);

describe("Produce and the request's array", () => {
  it("tells a request alone in its array from one sharing a chunk", () => {
    const chunk = new Uint8Array(1000);
    expect(ownsItsArray(new Uint8Array(996))).toBe(true);
    expect(ownsItsArray(chunk.subarray(4))).toBe(true); // the read carried its size prefix
    expect(ownsItsArray(chunk.subarray(4, 999))).toBe(false);
    expect(ownsItsArray(chunk.subarray(0, 500))).toBe(false);
  });

  it("copies a small batch into the log's memory, leaving the request untouched", () => {
    const state = newState();
    const sent = encodeRecordBatch([{ value: smallValue }]);
    produce(state, produceBody(encodeRecordBatch([{ value: new Uint8Array(3) }])));
    const body = produceBody(sent);
    const stored = produce(state, body);
    const batch = stored[1] as Uint8Array;
    expect(batch.buffer).not.toBe(body.buffer);
    expect(batch.buffer).toBe((stored[0] as Uint8Array).buffer); // the partition's chunk
    expect(batchBaseOffset(batch)).toBe(1);
    expect(() => parseBatchHeader(batch, 0)).not.toThrow(); // the CRC still checks
    expect(Buffer.compare(batch.subarray(8), sent.subarray(8))).toBe(0);
    expect(Buffer.compare(body, produceBody(sent))).toBe(0); // the base offset went into the copy
  });

  it("keeps the large batches of a request alone in its array as views of it", () => {
    const state = newState();
    const sent = encodeRecordBatch([{ value }]);
    produce(state, produceBody(encodeRecordBatch([{ value: new Uint8Array(3) }])));
    const body = produceBody(sent);
    const stored = produce(state, body);
    expect(stored).toHaveLength(2);
    const batch = stored[1] as Uint8Array;
    expect(batch.buffer).toBe(body.buffer);
    expect(batchBaseOffset(batch)).toBe(1);
    expect(() => parseBatchHeader(batch, 0)).not.toThrow(); // the CRC still checks
    expect(Buffer.compare(batch.subarray(8), sent.subarray(8))).toBe(0);
  });

  it("copies the large batches of a request that shares its chunk, pinning none of it", () => {
    const state = newState();
    const sent = encodeRecordBatch([{ value }]);
    produce(state, produceBody(encodeRecordBatch([{ value: new Uint8Array(3) }])));
    const body = produceBody(sent);
    const chunk = new Uint8Array(body.length + 100);
    chunk.set(body);
    const stored = produce(state, chunk.subarray(0, body.length));
    const batch = stored[1] as Uint8Array;
    expect(batch.buffer).not.toBe(chunk.buffer);
    expect(batch.buffer.byteLength).toBe(batch.byteLength);
    expect(batchBaseOffset(batch)).toBe(1);
    expect(() => parseBatchHeader(batch, 0)).not.toThrow(); // the CRC still checks
    expect(Buffer.compare(batch.subarray(8), sent.subarray(8))).toBe(0);
    // The chunk is untouched: the base offset went into the copy.
    expect(Buffer.compare(chunk.subarray(0, body.length), body)).toBe(0);
  });
});
