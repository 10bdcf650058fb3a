/**
 * Choosing the UUID part of a correlation id (the contract leaves it free: docs/contract.md, The correlation id) so that Kafka's default
 * partitioner, murmur2 of the whole id, puts the id's replies on a partition this north
 * instance reads. The id keeps its form, `uuid-md5hex`: only which random UUID is used changes.
 *
 * The search is cheap: one random UUID is drawn, murmur2's state over its first 32 characters
 * is computed once, and only its last 4 hex digits are varied (16 bits, 65,536 candidates).
 * murmur2 reads 4-byte blocks in order, so each candidate costs one block for the varied
 * digits and the suffix's blocks, whose mixing is computed once per suffix and kept. With `k`
 * of `n` partitions owned a search takes n/k candidates on average, a few nanoseconds each.
 */
import { randomUUID } from "node:crypto";
import {
  murmur2Finalize,
  murmur2MixKey,
  murmur2Seed,
  murmur2Step,
  murmur2Tail,
} from "./murmur2-partitioner.ts";

/** A suffix's part of murmur2, computed once: its full blocks mixed, its tail, its length. */
interface SuffixPlan {
  mixedBlocks: Int32Array;
  /** The 1–3 trailing bytes, little-endian; -1 when the suffix ends on a block boundary. */
  tail: number;
  /** Bytes of the whole id: 36 (the UUID) + the suffix's. */
  idLength: number;
}

const uuidLength = 36;
// The digits varied are the UUID's last four, bytes 32–35: murmur2's ninth block, whole.
const variedAt = 32;
const encoder = new TextEncoder();
const hexCodes = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));
// Digests depend on the route (the MD5 of its names; on guarded routes the caller's identity
// too), so a gateway sees a few per route and caller: kept, bounded like correlation-id.ts's.
const plans = new Map<string, SuffixPlan>();
const plansMax = 4096;

function planOf(digest: string): SuffixPlan {
  let plan = plans.get(digest);
  if (plan) return plan;
  const bytes = encoder.encode(`-${digest}`);
  const blocks = bytes.length >>> 2;
  const mixedBlocks = new Int32Array(blocks);
  for (let i = 0; i < blocks; i++) {
    const at = i * 4;
    mixedBlocks[i] = murmur2MixKey(
      (bytes[at] as number) |
        ((bytes[at + 1] as number) << 8) |
        ((bytes[at + 2] as number) << 16) |
        ((bytes[at + 3] as number) << 24),
    );
  }
  let tail = -1;
  const rest = bytes.length & 3;
  if (rest > 0) {
    tail = 0;
    for (let i = rest - 1; i >= 0; i--) tail = (tail << 8) | (bytes[blocks * 4 + i] as number);
  }
  plan = { mixedBlocks, tail, idLength: uuidLength + bytes.length };
  if (plans.size >= plansMax) plans.clear();
  plans.set(digest, plan);
  return plan;
}

/** A placed UUID and the partition its id lands on. */
export interface Placement {
  uuid: string;
  partition: number;
}

/**
 * A random v4 UUID such that `uuid-digest`, as a Kafka key, goes to a partition with
 * `owned[partition] !== 0` among `partitionCount`; undefined when 65,536 candidates found none
 * (no partition owned). `digest` is the rest of the id (the route's MD5 hex).
 */
export function placeUuid(
  digest: string,
  partitionCount: number,
  owned: Uint8Array,
): Placement | undefined {
  const plan = planOf(digest);
  const uuid = randomUUID();
  let h = murmur2Seed(plan.idLength);
  for (let at = 0; at < variedAt; at += 4) {
    h = murmur2Step(
      h,
      murmur2MixKey(
        uuid.charCodeAt(at) |
          (uuid.charCodeAt(at + 1) << 8) |
          (uuid.charCodeAt(at + 2) << 16) |
          (uuid.charCodeAt(at + 3) << 24),
      ),
    );
  }
  const blocks = plan.mixedBlocks;
  const tail = plan.tail;
  // Start from the UUID's own last digits, so the first candidate is the random UUID itself.
  let start = 0;
  for (let at = variedAt; at < uuidLength; at++) {
    const c = uuid.charCodeAt(at);
    start = (start << 4) | (c <= 57 ? c - 48 : c - 87);
  }
  for (let n = 0; n < 0x10000; n++) {
    const v = (start + n) & 0xffff;
    let x = murmur2Step(
      h,
      murmur2MixKey(
        (hexCodes[v >>> 12] as number) |
          ((hexCodes[(v >>> 8) & 15] as number) << 8) |
          ((hexCodes[(v >>> 4) & 15] as number) << 16) |
          ((hexCodes[v & 15] as number) << 24),
      ),
    );
    for (let i = 0; i < blocks.length; i++) x = murmur2Step(x, blocks[i] as number);
    if (tail >= 0) x = murmur2Tail(x, tail);
    const partition = (murmur2Finalize(x) & 0x7fffffff) % partitionCount;
    if (owned[partition] !== 0) {
      return { uuid: uuid.slice(0, variedAt) + v.toString(16).padStart(4, "0"), partition };
    }
  }
  return undefined;
}
