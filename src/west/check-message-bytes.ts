/**
 * A schema-free well-formedness check of protobuf bytes: west passes request and response
 * messages through as bytes, and this is how it tells a malformed message from a good one
 * without knowing the message type.
 */

/**
 * Checks that raw bytes are a well-formed protobuf message (any schema: tags, varints,
 * lengths and groups) and returns them unchanged; throws on malformed bytes.
 */
export function checkMessageBytes(bytes: Uint8Array): Uint8Array {
  const end = skipFields(bytes, 0, bytes.byteLength, 0);
  if (end !== bytes.byteLength) throw new Error("malformed protobuf message");
  return bytes;
}

/**
 * Skips fields from `at` until `end`, or until the end-group tag of `group` (a field
 * number; 0 outside a group). Returns the offset after the last field (after the end-group
 * tag inside a group); throws on malformed input.
 */
function skipFields(bytes: Uint8Array, at: number, end: number, group: number): number {
  let i = at;
  while (i < end) {
    const tag = readVarint(bytes, i, end);
    i = tag.next;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (field === 0) throw new Error("malformed protobuf message: field number 0");
    switch (wireType) {
      case 0:
        i = readVarint(bytes, i, end).next;
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        const length = readVarint(bytes, i, end);
        i = length.next + length.value;
        break;
      }
      case 3:
        i = skipFields(bytes, i, end, field);
        break;
      case 4:
        if (field !== group) throw new Error("malformed protobuf message: unmatched end group");
        return i;
      case 5:
        i += 4;
        break;
      default:
        throw new Error(`malformed protobuf message: wire type ${wireType}`);
    }
    if (i > end) throw new Error("malformed protobuf message: truncated");
  }
  if (group !== 0) throw new Error("malformed protobuf message: unterminated group");
  return i;
}

const varint = { value: 0, next: 0 };

/** A varint of up to 10 bytes (values past 2^53 lose precision: only lengths need it). */
function readVarint(bytes: Uint8Array, at: number, end: number): typeof varint {
  let value = 0;
  let scale = 1;
  for (let i = at; i < end && i < at + 10; i++) {
    const b = bytes[i] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      varint.value = value;
      varint.next = i + 1;
      return varint;
    }
    scale *= 128;
  }
  throw new Error("malformed protobuf message: bad varint");
}
