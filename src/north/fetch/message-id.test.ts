import { describe, expect, test } from "vitest";
import {
  appendMessageIdField,
  decodeMessageId,
  encodeMessageId,
  lengthDelimitedTag,
  messageIdToBase64url,
  parseMessageId,
} from "./message-id.ts";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

describe("fetch.message.id.vectors", () => {
  test("AQIABA is partition 0 at next offset 2 (docs/contract.md: Fetch)", () => {
    expect(hex(Buffer.from("AQIABA", "base64url"))).toBe("01020004");
    expect(parseMessageId("AQIABA")).toEqual(new Map([[0, 2]]));
    const bytes = encodeMessageId([[0, 2]]);
    expect(hex(bytes)).toBe("01020004");
    expect(messageIdToBase64url(bytes)).toBe("AQIABA");
  });

  test("field 32767 encodes as tag bytes FA FF 0F", () => {
    expect(hex(lengthDelimitedTag(32767))).toBe("faff0f");
    expect(hex(lengthDelimitedTag(1))).toBe("0a");
  });

  test("zigzag varints for several partitions and 64-bit offsets", () => {
    // count 3 → 06; partition 1 → 02, offset 300 → zigzag 600 → d8 04; partition 2 → 04,
    // offset 2^40 → zigzag 2^41 → 80 80 80 80 80 40.
    const positions: Array<[number, number]> = [
      [0, 0],
      [1, 300],
      [2, 2 ** 40],
    ];
    const bytes = encodeMessageId(positions);
    expect(hex(bytes)).toBe("0106000002d80404808080808040");
    expect(decodeMessageId(bytes)).toEqual(new Map(positions));
    expect(parseMessageId(messageIdToBase64url(bytes))).toEqual(new Map(positions));
  });

  test("an empty id (no partitions) round-trips", () => {
    expect(hex(encodeMessageId([]))).toBe("0100");
    expect(decodeMessageId(Uint8Array.of(1, 0))).toEqual(new Map());
  });

  test("the appended field is tag, length, id after the message bytes", () => {
    const message = Uint8Array.of(0x0a, 0x01, 0x41); // field 1 = "A"
    const id = encodeMessageId([[0, 2]]);
    const out = appendMessageIdField(message, lengthDelimitedTag(32767), id);
    expect(hex(out)).toBe("0a0141" + "faff0f" + "04" + "01020004");
  });

  test("invalid ids are rejected, not guessed at", () => {
    for (const text of [
      "", // nothing
      "!!!", // not base64url
      "AQIABA==x", // junk after padding
      "AgIABA", // version 2
      "AQIA", // count 1 but no entry
      "AQIABAA", // trailing byte
      "AQEABA", // count -1 (zigzag 1)
      "AQIBBA", // partition -1
      "AQIAAw", // offset -2
      "AQL_____________", // offset varint too long
    ]) {
      expect(parseMessageId(text), text).toBeUndefined();
    }
  });
});
