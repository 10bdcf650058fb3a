import { describe, expect, it } from "vitest";
import {
  decodeInteger,
  encodeInteger,
  type HeaderField,
  HpackDecoder,
  type HpackDecoderOptions,
  HpackEncoder,
  HpackError,
  HUFFMAN_CODE,
  huffmanDecode,
  huffmanEncode,
} from "./hpack.ts";

/** Bytes from an RFC-style hex dump ("8286 8441 ..."). */
function hex(dump: string): Uint8Array {
  const digits = dump.replace(/\s+/g, "");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The dynamic table as seen through indexed lookups 62, 63, ...; the probes do not change it. */
function dynamicTable(decoder: HpackDecoder): HeaderField[] {
  const entries: HeaderField[] = [];
  for (let index = 62; ; index++) {
    try {
      entries.push(...decoder.decode(Uint8Array.of(...encodeIndexed(index))));
    } catch (error) {
      expect(error).toBeInstanceOf(HpackError);
      return entries;
    }
  }
}

function encodeIndexed(index: number): Uint8Array {
  const bytes = encodeInteger(index, 7);
  bytes[0] = (bytes[0] as number) | 0x80;
  return bytes;
}

function tableSize(entries: HeaderField[]): number {
  return entries.reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0);
}

/** A small deterministic PRNG (mulberry32) so random cases repeat. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function decodeError(decoder: HpackDecoder, block: Uint8Array): HpackError {
  try {
    decoder.decode(block);
  } catch (error) {
    expect(error).toBeInstanceOf(HpackError);
    return error as HpackError;
  }
  throw new Error(`decoded without error: ${toHex(block)}`);
}

describe("Huffman code table (RFC 7541 Appendix B)", () => {
  const entries = Array.from({ length: HUFFMAN_CODE.length / 2 }, (_, sym) => ({
    sym,
    code: HUFFMAN_CODE[sym * 2] as number,
    bits: HUFFMAN_CODE[sym * 2 + 1] as number,
  }));

  it("has 257 symbols whose codes fit their lengths", () => {
    expect(entries).toHaveLength(257);
    for (const { code, bits } of entries) {
      expect(bits).toBeGreaterThanOrEqual(5);
      expect(bits).toBeLessThanOrEqual(30);
      expect(code).toBeLessThan(2 ** bits);
    }
    expect(entries[256]).toEqual({ sym: 256, code: 0x3fffffff, bits: 30 });
  });

  it("is a complete prefix code: Kraft sum exactly 1", () => {
    const sum = entries.reduce((total, { bits }) => total + 2 ** (30 - bits), 0);
    expect(sum).toBe(2 ** 30);
  });

  it("is canonical: codes ascend by (length, symbol) with no gaps", () => {
    const sorted = [...entries].sort((a, b) => a.bits - b.bits || a.sym - b.sym);
    let code = 0;
    let bits = (sorted[0] as (typeof entries)[number]).bits;
    for (const [i, entry] of sorted.entries()) {
      if (i > 0) code = (code + 1) * 2 ** (entry.bits - bits);
      bits = entry.bits;
      expect(entry.code, `symbol ${entry.sym}`).toBe(code);
    }
  });
});

describe("C.1 integer representation", () => {
  it("C.1.1 encodes 10 with a 5-bit prefix", () => {
    expect(toHex(encodeInteger(10, 5))).toBe("0a");
    expect(decodeInteger(hex("ea"), 0, 5)).toEqual([10, 1]);
  });

  it("C.1.2 encodes 1337 with a 5-bit prefix", () => {
    expect(toHex(encodeInteger(1337, 5))).toBe("1f9a0a");
    expect(decodeInteger(hex("ff9a0a"), 0, 5)).toEqual([1337, 3]);
  });

  it("C.1.3 encodes 42 starting at an octet boundary", () => {
    expect(toHex(encodeInteger(42, 8))).toBe("2a");
    expect(decodeInteger(hex("002a"), 1, 8)).toEqual([42, 2]);
  });

  it("round-trips prefix boundaries and large values", () => {
    for (const prefix of [4, 5, 6, 7, 8]) {
      for (const value of [0, 1, 2 ** prefix - 2, 2 ** prefix - 1, 2 ** prefix, 127, 128, 16383]) {
        expect(decodeInteger(encodeInteger(value, prefix), 0, prefix)).toEqual([
          value,
          encodeInteger(value, prefix).length,
        ]);
      }
    }
    expect(decodeInteger(encodeInteger(2 ** 31 - 1, 5), 0, 5)[0]).toBe(2 ** 31 - 1);
  });

  it("rejects integers that overflow or are cut short", () => {
    expect(() => decodeInteger(hex("1fffffffff0f"), 0, 5)).toThrow(HpackError);
    expect(() => decodeInteger(hex("1f8080808080808001"), 0, 5)).toThrow(HpackError);
    expect(() => decodeInteger(hex("1f9a"), 0, 5)).toThrow(HpackError);
    expect(() => decodeInteger(hex("1f"), 0, 5)).toThrow(HpackError);
  });
});

describe("C.2 header field representations", () => {
  it("C.2.1 literal header field with indexing", () => {
    const decoder = new HpackDecoder();
    const block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    expect(decoder.decode(block)).toEqual([["custom-key", "custom-header"]]);
    expect(dynamicTable(decoder)).toEqual([["custom-key", "custom-header"]]);
    expect(tableSize(dynamicTable(decoder))).toBe(55);
  });

  it("C.2.2 literal header field without indexing", () => {
    const decoder = new HpackDecoder();
    const block = hex("040c 2f73 616d 706c 652f 7061 7468");
    expect(decoder.decode(block)).toEqual([[":path", "/sample/path"]]);
    expect(dynamicTable(decoder)).toEqual([]);
  });

  it("C.2.3 literal header field never indexed", () => {
    const decoder = new HpackDecoder();
    const block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    expect(decoder.decode(block)).toEqual([["password", "secret"]]);
    expect(dynamicTable(decoder)).toEqual([]);
  });

  it("C.2.4 indexed header field", () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex("82"))).toEqual([[":method", "GET"]]);
    expect(dynamicTable(decoder)).toEqual([]);
  });
});

const request1: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "www.example.com"],
];
const request2: HeaderField[] = [...request1, ["cache-control", "no-cache"]];
const request3: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const requestTables: HeaderField[][] = [
  [[":authority", "www.example.com"]],
  [
    ["cache-control", "no-cache"],
    [":authority", "www.example.com"],
  ],
  [
    ["custom-key", "custom-value"],
    ["cache-control", "no-cache"],
    [":authority", "www.example.com"],
  ],
];

function checkSequence(
  decoder: HpackDecoder,
  steps: { block: string; fields: HeaderField[]; table: HeaderField[]; size: number }[],
): void {
  for (const step of steps) {
    expect(decoder.decode(hex(step.block))).toEqual(step.fields);
    const table = dynamicTable(decoder);
    expect(table).toEqual(step.table);
    expect(tableSize(table)).toBe(step.size);
  }
}

/** The three requests of C.3 and C.4: the same fields and tables, coded without and with Huffman. */
function checkRequests(blocks: readonly [string, string, string]): void {
  const fields = [request1, request2, request3];
  const sizes = [57, 110, 164];
  checkSequence(
    new HpackDecoder(),
    blocks.map((block, i) => ({
      block,
      fields: fields[i] as HeaderField[],
      table: requestTables[i] as HeaderField[],
      size: sizes[i] as number,
    })),
  );
}

describe("C.3 requests without Huffman coding", () => {
  it("decodes three requests on one connection", () => {
    checkRequests([
      "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
  });
});

describe("C.4 requests with Huffman coding", () => {
  it("decodes three requests on one connection", () => {
    checkRequests([
      "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
  });

  it("Huffman-encodes the request strings to the RFC's bytes", () => {
    expect(toHex(huffmanEncode("www.example.com"))).toBe("f1e3c2e5f23a6ba0ab90f4ff");
    expect(toHex(huffmanEncode("no-cache"))).toBe("a8eb10649cbf");
    expect(toHex(huffmanEncode("custom-key"))).toBe("25a849e95ba97d7f");
    expect(toHex(huffmanEncode("custom-value"))).toBe("25a849e95bb8e8b4bf");
  });
});

const date21 = "Mon, 21 Oct 2013 20:13:21 GMT";
const date22 = "Mon, 21 Oct 2013 20:13:22 GMT";
const location = "https://www.example.com";
const cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const response1: HeaderField[] = [
  [":status", "302"],
  ["cache-control", "private"],
  ["date", date21],
  ["location", location],
];
const response2: HeaderField[] = [[":status", "307"], ...response1.slice(1)];
const response3: HeaderField[] = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", date22],
  ["location", location],
  ["content-encoding", "gzip"],
  ["set-cookie", cookie],
];
const responseTables: HeaderField[][] = [
  [
    ["location", location],
    ["date", date21],
    ["cache-control", "private"],
    [":status", "302"],
  ],
  [
    [":status", "307"],
    ["location", location],
    ["date", date21],
    ["cache-control", "private"],
  ],
  [
    ["set-cookie", cookie],
    ["content-encoding", "gzip"],
    ["date", date22],
  ],
];

// The encoder in C.5 and C.6 works with a 256-byte table and sends no size update: model that as
// the announced limit (maxTableBytes) or as the size the peer starts with (initialTableBytes).
const tableOptions = [{ maxTableBytes: 256 }, { maxTableBytes: 4096, initialTableBytes: 256 }];

/** The three responses of C.5 and C.6: the same fields and tables, coded without and with Huffman. */
function checkResponses(
  options: HpackDecoderOptions,
  blocks: readonly [string, string, string],
): void {
  const fields = [response1, response2, response3];
  const sizes = [222, 222, 215];
  checkSequence(
    new HpackDecoder(options),
    blocks.map((block, i) => ({
      block,
      fields: fields[i] as HeaderField[],
      table: responseTables[i] as HeaderField[],
      size: sizes[i] as number,
    })),
  );
}

describe("C.5 responses without Huffman coding", () => {
  it.each(tableOptions)("decodes three responses with evictions (%o)", (options) => {
    checkResponses(options, [
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133" +
        "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70" +
        "6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d" +
        "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049" +
        "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e" +
        "3d31",
    ]);
  });
});

describe("C.6 responses with Huffman coding", () => {
  it.each(tableOptions)("decodes three responses with evictions (%o)", (options) => {
    checkResponses(options, [
      "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6" +
        "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab" +
        "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f" +
        "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
  });

  it("Huffman-encodes the response strings to the RFC's bytes", () => {
    expect(toHex(huffmanEncode("302"))).toBe("6402");
    expect(toHex(huffmanEncode("307"))).toBe("640eff");
    expect(toHex(huffmanEncode("private"))).toBe("aec3771a4b");
    expect(toHex(huffmanEncode(date21))).toBe("d07abe941054d444a8200595040b8166e082a62d1bff");
    expect(toHex(huffmanEncode(location))).toBe("9d29ad171863c78f0b97c8e9ae82ae43d3");
    expect(toHex(huffmanEncode("gzip"))).toBe("9bd9ab");
    expect(toHex(huffmanEncode(cookie))).toBe(
      "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    );
  });
});

describe("huffmanEncode / huffmanDecode", () => {
  it("round-trips every byte value, alone and together", () => {
    let all = "";
    for (let byte = 0; byte < 256; byte++) {
      const text = String.fromCharCode(byte);
      expect(huffmanDecode(huffmanEncode(text))).toBe(text);
      all += text;
    }
    expect(huffmanDecode(huffmanEncode(all))).toBe(all);
    expect(huffmanDecode(huffmanEncode(all + all + all))).toBe(all + all + all);
  });

  it("round-trips random strings", () => {
    const next = random(7541);
    for (let round = 0; round < 500; round++) {
      const length = Math.floor(next() * 200);
      const ascii = next() < 0.5;
      let text = "";
      for (let i = 0; i < length; i++) {
        text += String.fromCharCode(Math.floor(next() * (ascii ? 95 : 256)) + (ascii ? 32 : 0));
      }
      expect(huffmanDecode(huffmanEncode(text))).toBe(text);
    }
  });

  it("handles the empty string", () => {
    expect(huffmanEncode("")).toEqual(new Uint8Array(0));
    expect(huffmanDecode(new Uint8Array(0))).toBe("");
  });

  it("rejects padding longer than 7 bits", () => {
    // "a" (00011) padded with 3 ones, then a whole byte of ones.
    expect(huffmanDecode(hex("1f"))).toBe("a");
    expect(() => huffmanDecode(hex("1fff"))).toThrow(/longer than 7 bits/);
    expect(() => huffmanDecode(hex("ff"))).toThrow(/longer than 7 bits/);
  });

  it("rejects padding that is not a prefix of EOS", () => {
    expect(() => huffmanDecode(hex("18"))).toThrow(/not a prefix of EOS/); // "a" + 000
    expect(() => huffmanDecode(hex("1e"))).toThrow(/not a prefix of EOS/); // "a" + 110
  });

  it("rejects the EOS symbol inside a string", () => {
    expect(() => huffmanDecode(hex("ffffffff"))).toThrow(/EOS/); // EOS + 2 ones
    expect(() => huffmanDecode(hex("1fffffffff"))).toThrow(/EOS/); // "a" + EOS + 5 ones
  });

  it("refuses characters outside latin1", () => {
    expect(() => huffmanEncode("\u0100")).toThrow(RangeError);
  });
});

describe("HpackDecoder", () => {
  it("decodes latin1 bytes one char per byte (not windows-1252)", () => {
    const block = hex("0003 782d 6103 80e9 ff");
    expect(new HpackDecoder().decode(block)).toEqual([["x-a", "\u0080\u00e9\u00ff"]]);
  });

  it("rejects index 0", () => {
    expect(decodeError(new HpackDecoder(), hex("80")).message).toMatch(/index 0/);
  });

  it("rejects indexes past the static and dynamic tables", () => {
    expect(decodeError(new HpackDecoder(), hex("be")).message).toMatch(/out of range/);
    expect(decodeError(new HpackDecoder(), hex("ff00")).message).toMatch(/out of range/);
    // A literal whose name index (62) is past the empty dynamic table.
    expect(decodeError(new HpackDecoder(), hex("7e 0161")).message).toMatch(/out of range/);
    const decoder = new HpackDecoder();
    decoder.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
    expect(decoder.decode(hex("be"))).toEqual([["custom-key", "custom-header"]]);
    expect(decodeError(decoder, hex("bf")).message).toMatch(/index 63 out of range/);
  });

  it("applies table size updates at the start of a block", () => {
    const decoder = new HpackDecoder();
    decoder.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
    expect(dynamicTable(decoder)).toHaveLength(1);
    // Two updates (0, then 4096) empty the table; the limit itself is allowed.
    expect(decoder.decode(hex("20 3fe1 1f 82"))).toEqual([[":method", "GET"]]);
    expect(dynamicTable(decoder)).toEqual([]);
    // A smaller table evicts the oldest entries.
    decoder.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
    decoder.decode(hex("4003 6162 6303 7879 7a"));
    expect(dynamicTable(decoder)).toHaveLength(2);
    decoder.decode(hex("3f 1c")); // 31 + 28 = 59 bytes: room for "abc: xyz" (38) only
    expect(dynamicTable(decoder)).toEqual([["abc", "xyz"]]);
    // Later insertions evict to stay within the new size.
    decoder.decode(hex("4003 6465 6603 7576 77"));
    expect(dynamicTable(decoder)).toEqual([["def", "uvw"]]);
  });

  it("rejects a table size update above the announced limit", () => {
    expect(decodeError(new HpackDecoder(), hex("3fe2 1f")).message).toMatch(/above the limit/);
    expect(new HpackDecoder({ maxTableBytes: 100 }).decode(hex("3f 45"))).toEqual([]);
    expect(() => new HpackDecoder({ maxTableBytes: 100 }).decode(hex("3f 46"))).toThrow(HpackError);
  });

  it("rejects a table size update after a header field, and more than two", () => {
    expect(decodeError(new HpackDecoder(), hex("82 20")).message).toMatch(
      /table size update after a header field/,
    );
    expect(decodeError(new HpackDecoder(), hex("20 20 20")).message).toMatch(/more than two/);
  });

  it("empties the table for an entry larger than the table", () => {
    const decoder = new HpackDecoder({ maxTableBytes: 64 });
    decoder.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
    expect(dynamicTable(decoder)).toHaveLength(1);
    const long = "x".repeat(40);
    const block = Uint8Array.of(
      0x40,
      1,
      0x61,
      long.length,
      ...Array.from(long, (c) => c.charCodeAt(0)),
    );
    expect(decoder.decode(block)).toEqual([["a", long]]);
    expect(dynamicTable(decoder)).toEqual([]);
  });

  it("keeps many entries in order as the table grows", () => {
    const decoder = new HpackDecoder({ maxTableBytes: 65536 });
    const encoded: number[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `n${i}`;
      encoded.push(0x40, name.length, ...Array.from(name, (c) => c.charCodeAt(0)), 0);
    }
    decoder.decode(Uint8Array.from(encoded));
    const table = dynamicTable(decoder);
    expect(table).toHaveLength(300);
    expect(table[0]).toEqual(["n299", ""]);
    expect(table[299]).toEqual(["n0", ""]);
  });

  it("rejects a truncated integer", () => {
    expect(decodeError(new HpackDecoder(), hex("ff")).message).toMatch(/truncated integer/);
    expect(decodeError(new HpackDecoder(), hex("ff80")).message).toMatch(/truncated integer/);
    expect(decodeError(new HpackDecoder(), hex("40 7f")).message).toMatch(/truncated integer/);
    expect(decodeError(new HpackDecoder(), hex("ffffffffff0f")).message).toMatch(/too large/);
  });

  it("rejects a truncated string", () => {
    expect(decodeError(new HpackDecoder(), hex("40 0561")).message).toMatch(/past the end/);
    expect(decodeError(new HpackDecoder(), hex("04")).message).toMatch(/truncated string/);
    expect(decodeError(new HpackDecoder(), hex("00 0161")).message).toMatch(/truncated string/);
    expect(decodeError(new HpackDecoder(), hex("04 83 6402")).message).toMatch(/past the end/);
  });

  it("rejects bad Huffman strings inside a block", () => {
    expect(decodeError(new HpackDecoder(), hex("04 82 1fff")).message).toMatch(/longer than 7/);
    expect(decodeError(new HpackDecoder(), hex("04 81 18")).message).toMatch(/not a prefix/);
    expect(decodeError(new HpackDecoder(), hex("04 84 ffffffff")).message).toMatch(/EOS/);
  });

  it("rejects a header list over the limit", () => {
    const decoder = new HpackDecoder({ maxHeaderListBytes: 100 });
    const fits = new HpackEncoder().encode([["a", "x".repeat(67)]]); // 1 + 67 + 32 = 100
    expect(decoder.decode(fits)).toHaveLength(1);
    const block = new HpackEncoder().encode([
      ["a", "x".repeat(30)],
      ["b", "y".repeat(30)],
    ]);
    expect(decodeError(decoder, block).message).toBe("header list larger than 100 bytes");
    expect(
      decodeError(new HpackDecoder(), new HpackEncoder().encode([["big", "z".repeat(65536)]]))
        .message,
    ).toBe("header list larger than 65536 bytes");
  });
});

describe("literals that repeat", () => {
  /** A literal without indexing, new name, Huffman-coded (or not) name and value. */
  function literal(name: string, value: string, huffman: boolean): Uint8Array {
    const enc = (text: string) => {
      const bytes = huffman ? huffmanEncode(text) : new TextEncoder().encode(text);
      const length = [...encodeInteger(bytes.length, 7)];
      if (huffman) length[0] = (length[0] as number) | 0x80;
      return [...length, ...bytes];
    };
    return Uint8Array.of(0x00, ...enc(name), ...enc(value));
  }

  it("decode the same each time, and a literal one byte apart as itself", () => {
    const decoder = new HpackDecoder();
    for (const huffman of [true, false]) {
      for (let round = 0; round < 3; round++) {
        for (const path of [
          "/grpc.examples.echo.Echo/UnaryEcho",
          "/grpc.examples.echo.Echo/UnaryEchp",
        ]) {
          expect(decoder.decode(literal(":path", path, huffman))).toEqual([[":path", path]]);
        }
      }
    }
  });

  it("still refuses a bad Huffman string of a length seen before", () => {
    const decoder = new HpackDecoder();
    const good = literal("x", "a", true); // "a" is 00011, then padding 111: 0x1f
    expect(decoder.decode(good)).toEqual([["x", "a"]]);
    expect(good[good.length - 1]).toBe(0x1f);
    const bad = good.slice();
    // The same length, padded with zeros: not a prefix of EOS.
    bad[bad.length - 1] = 0x18;
    expect(() => decoder.decode(bad)).toThrow(HpackError);
  });

  it("decodes many distinct literals right as the cache fills and empties", () => {
    const decoder = new HpackDecoder();
    for (let i = 0; i < 1000; i++) {
      const value = `v-${i}-${"x".repeat(i % 40)}`;
      expect(decoder.decode(literal("x-n", value, i % 2 === 0))).toEqual([["x-n", value]]);
    }
  });
});

describe("HpackEncoder", () => {
  it("indexes fields whose name and value are in the static table", () => {
    const encoder = new HpackEncoder();
    expect(
      Array.from(
        encoder.encode([
          [":method", "POST"],
          [":scheme", "http"],
        ]),
      ),
    ).toEqual([0x83, 0x86]);
    expect(
      toHex(
        encoder.encode([
          [":status", "200"],
          ["accept-encoding", "gzip, deflate"],
        ]),
      ),
    ).toBe("8890");
    expect(toHex(encoder.encode([[":authority", ""]]))).toBe("81");
  });

  it("writes literals without indexing, with the static name index when there is one", () => {
    const encoder = new HpackEncoder();
    expect(toHex(encoder.encode([["grpc-timeout", "1S"]]))).toBe(
      "000c677270632d74696d656f7574023153",
    );
    expect(toHex(encoder.encode([["password", "secret"]]))).toBe(
      "000870617373776f726406736563726574",
    );
    expect(toHex(encoder.encode([["www-authenticate", "x"]]))).toBe("0f2e0178"); // index 61 = 15 + 46
    expect(encoder.encode([])).toEqual(new Uint8Array(0));
  });

  it("round-trips through a fresh decoder, adding only the names that repeat to its table", () => {
    let printable = "";
    for (let c = 0x20; c < 0x7f; c++) printable += String.fromCharCode(c);
    const fields: HeaderField[] = [
      [":method", "POST"],
      [":scheme", "https"],
      [":path", "/gateway.v1.Echo/Unary"],
      [":authority", "localhost:50051"],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["grpc-timeout", "1500m"],
      ["x-printable", printable],
      ["x-empty", ""],
      ["user-agent", ""],
      ["x-latin1", "caf\u00e9 \u0080\u00ff"],
      ["x-long", "v".repeat(5000)],
      ["n".repeat(200), "long name"],
      [":status", "200"],
    ];
    const block = new HpackEncoder().encode(fields);
    const decoder = new HpackDecoder();
    expect(decoder.decode(block)).toEqual(fields);
    // Newest first; the empty user-agent is in the static table, :status 200 too.
    expect(dynamicTable(decoder)).toEqual([
      ["te", "trailers"],
      ["content-type", "application/grpc"],
      [":authority", "localhost:50051"],
      [":path", "/gateway.v1.Echo/Unary"],
    ]);
  });

  it("adds a repeating field once and sends it as one index after", () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const request: HeaderField[] = [
      [":method", "POST"],
      [":path", "/sample/path"],
      ["content-type", "application/grpc"],
      ["grpc-timeout", "99m"],
    ];
    const first = encoder.encode(request);
    // :path with incremental indexing and the static name index 4 (01 000100).
    expect(toHex(first).startsWith("83440c2f73616d706c652f70617468")).toBe(true);
    expect(decoder.decode(first)).toEqual(request);
    const second = encoder.encode(request);
    // :method static, :path 63, content-type 62, grpc-timeout a literal again.
    expect(toHex(second)).toBe("83bfbe000c677270632d74696d656f75740339396d");
    expect(decoder.decode(second)).toEqual(request);
  });

  it("keeps metadata, messages and credentials out of the table", () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const fields: HeaderField[] = [
      ["authorization", "Bearer abc"],
      ["grpc-message", "oops"],
      ["x-request-id", "1"],
      ["grpc-status", "13"],
    ];
    expect(decoder.decode(encoder.encode(fields))).toEqual(fields);
    expect(dynamicTable(decoder)).toEqual([["grpc-status", "13"]]);
  });

  it("stays in step with one decoder over many blocks as entries are evicted", () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let block = 0; block < 400; block++) {
      const fields: HeaderField[] = [
        [":path", `/svc/method-${next() % 90}`],
        [":authority", `host-${next() % 5}:${"p".repeat(next() % 300)}`],
        ["content-type", next() % 2 ? "application/grpc" : "application/grpc+proto"],
        ["grpc-status", String(next() % 17)],
        ["x-meta", String(next())],
      ];
      expect(decoder.decode(encoder.encode(fields))).toEqual(fields);
    }
    const table = dynamicTable(decoder);
    const bytes = table.reduce((n, [name, value]) => n + name.length + value.length + 32, 0);
    expect(bytes).toBeLessThanOrEqual(4096);
    expect(bytes).toBeGreaterThan(3000);
  });

  it("tells the peer of a smaller table at the start of the next block, then stays within it", () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const fields: HeaderField[] = [[":path", "/a/b"]];
    decoder.decode(encoder.encode(fields));
    encoder.setPeerTableSize(0);
    const block = encoder.encode(fields);
    expect(block[0]).toBe(0x20); // size update to 0
    expect(decoder.decode(block)).toEqual(fields);
    expect(dynamicTable(decoder)).toEqual([]);
    // Lowered and raised again before a block: the smallest first, then the final size.
    encoder.setPeerTableSize(100);
    encoder.setPeerTableSize(65536);
    const again = encoder.encode(fields);
    expect(toHex(again.subarray(0, 4))).toBe("3f453fe1"); // 100, then 4096
    expect(decoder.decode(again)).toEqual(fields);
    expect(dynamicTable(decoder)).toEqual([[":path", "/a/b"]]);
    // A larger setting than the default changes nothing: no update is owed.
    expect(toHex(encoder.encode(fields))).toBe("be");
  });

  it("empties the table after a block it could not encode, and says so in the next one", () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    decoder.decode(encoder.encode([[":path", "/one"]]));
    expect(() =>
      encoder.encode([
        [":path", "/two"],
        ["x-emoji", "\u{1f600}"],
      ]),
    ).toThrow(RangeError);
    const fields: HeaderField[] = [
      [":path", "/two"],
      [":path", "/one"],
    ];
    const block = encoder.encode(fields);
    expect(toHex(block.subarray(0, 4))).toBe("203fe11f"); // 0, then 4096
    expect(decoder.decode(block)).toEqual(fields);
    expect(dynamicTable(decoder)).toEqual([
      [":path", "/one"],
      [":path", "/two"],
    ]);
  });

  it("returns independent blocks", () => {
    const encoder = new HpackEncoder();
    const first = encoder.encode([["x-a", "1"]]);
    const copy = first.slice();
    encoder.encode([["x-b", "2".repeat(3000)]]);
    expect(first).toEqual(copy);
  });

  it("refuses characters outside latin1", () => {
    expect(() => new HpackEncoder().encode([["x-emoji", "\u{1f600}"]])).toThrow(RangeError);
  });
});
