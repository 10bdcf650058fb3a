/**
 * The fetch capability's message id (docs/contract.md: Fetch): where a stream stands in every partition,
 * appended to each response message as one extra length-delimited protobuf field, and sent
 * back by a reconnecting client as base64url metadata to resume.
 *
 * Bytes: `0x01` (version), zigzag-varint partition count, then per partition a
 * zigzag-varint partition id and a zigzag-varint64 next offset. Offsets are JS numbers:
 * every offset a real log reaches is far below 2^53, and anything beyond it is rejected as
 * an invalid id rather than silently rounded.
 */

import { Buffer } from "node:buffer";

/** Partition id → next offset to read (the position after the last record delivered). */
export type PartitionPositions = ReadonlyArray<readonly [partition: number, nextOffset: number]>;

const VERSION = 0x01;
/** Largest zigzag value a 10-byte varint64 can hold that is still an exact JS number. */
const MAX_ZIGZAG = Number.MAX_SAFE_INTEGER;
const MAX_INT32 = 0x7fffffff;

/** The message id bytes for these positions (in the order given). */
export function encodeMessageId(positions: PartitionPositions): Uint8Array {
  const out: number[] = [VERSION];
  pushVarint(out, zigzag(positions.length));
  for (const [partition, offset] of positions) {
    pushVarint(out, zigzag(partition));
    pushVarint(out, zigzag(offset));
  }
  return Uint8Array.from(out);
}

/** Positions from message id bytes, or `undefined` when the bytes are not a valid id. */
export function decodeMessageId(bytes: Uint8Array): Map<number, number> | undefined {
  if (bytes[0] !== VERSION) return undefined;
  const reader = { bytes, at: 1 };
  const count = readZigzag(reader);
  if (count === undefined || count < 0 || count > MAX_INT32) return undefined;
  const positions = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const partition = readZigzag(reader);
    const offset = readZigzag(reader);
    if (partition === undefined || offset === undefined) return undefined;
    if (partition < 0 || partition > MAX_INT32 || offset < 0) return undefined;
    positions.set(partition, offset);
  }
  // Trailing bytes mean the id was cut from something else; trust none of it.
  return reader.at === bytes.length ? positions : undefined;
}

/** The base64url text (no padding) a client sends back as resume metadata. */
export function messageIdToBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/** Positions from resume metadata text, or `undefined` when it is not a valid id. */
export function parseMessageId(text: string): Map<number, number> | undefined {
  // Buffer's decoder skips characters outside the alphabet; an id with any is not ours.
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(text)) return undefined;
  return decodeMessageId(Buffer.from(text, "base64url"));
}

/** The tag bytes of a length-delimited field `fieldNumber` (32767 → FA FF 0F). */
export function lengthDelimitedTag(fieldNumber: number): Uint8Array {
  if (!Number.isInteger(fieldNumber) || fieldNumber < 1 || fieldNumber > 536_870_911) {
    throw new RangeError(`invalid protobuf field number ${fieldNumber}`);
  }
  const out: number[] = [];
  pushVarint(out, fieldNumber * 8 + 2);
  return Uint8Array.from(out);
}

/** `message` followed by the field `tag` holding `id` (tag from `lengthDelimitedTag`). */
export function appendMessageIdField(
  message: Uint8Array,
  tag: Uint8Array,
  id: Uint8Array,
): Uint8Array {
  const length: number[] = [];
  pushVarint(length, id.length);
  const out = new Uint8Array(message.length + tag.length + length.length + id.length);
  out.set(message, 0);
  out.set(tag, message.length);
  out.set(length, message.length + tag.length);
  out.set(id, message.length + tag.length + length.length);
  return out;
}

function zigzag(n: number): number {
  if (!Number.isSafeInteger(n) || Math.abs(n) > MAX_ZIGZAG / 2) {
    throw new RangeError(`cannot encode ${n} in a message id`);
  }
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

// Arithmetic instead of bit operators: bit operators truncate to 32 bits, offsets do not fit.
function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) + 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function readZigzag(reader: { bytes: Uint8Array; at: number }): number | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const byte = reader.bytes[reader.at++];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * scale;
    if (value > MAX_ZIGZAG) return undefined;
    if (byte < 0x80) return unzigzag(value);
    scale *= 0x80;
  }
  return undefined;
}
