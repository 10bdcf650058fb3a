import { describe, expect, test } from "vitest";
import { createRecordFilter, type FilterableRecord } from "./fetch-filter.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const record = (key: string | null, headers: Array<[string, string]> = []): FilterableRecord => ({
  key: key === null ? null : utf8(key),
  headers: headers.map(([n, v]) => [n, utf8(v)] as const),
});

describe("createRecordFilter", () => {
  test("no filters accept everything", () => {
    expect(createRecordFilter(undefined)(record(null))).toBe(true);
    expect(createRecordFilter([])(record("k"))).toBe(true);
  });

  test("key must match exactly; a null key never matches a key filter", () => {
    const accept = createRecordFilter([{ key: "a" }]);
    expect(accept(record("a"))).toBe(true);
    expect(accept(record("ab"))).toBe(false);
    expect(accept(record(null))).toBe(false);
  });

  test("every header of an item must be present with its value", () => {
    const accept = createRecordFilter([{ headers: { x: "1", y: "2" } }]);
    expect(
      accept(
        record(null, [
          ["x", "1"],
          ["y", "2"],
        ]),
      ),
    ).toBe(true);
    expect(accept(record(null, [["x", "1"]]))).toBe(false);
    expect(
      accept(
        record(null, [
          ["x", "1"],
          ["y", "3"],
        ]),
      ),
    ).toBe(false);
    // A repeated header matches when one of its values is the filter's.
    expect(
      accept(
        record(null, [
          ["x", "0"],
          ["x", "1"],
          ["y", "2"],
        ]),
      ),
    ).toBe(true);
  });

  test("key and headers in one item are ANDed; items are ORed", () => {
    const accept = createRecordFilter([{ key: "a", headers: { x: "1" } }, { key: "b" }]);
    expect(accept(record("a", [["x", "1"]]))).toBe(true);
    expect(accept(record("a"))).toBe(false);
    expect(accept(record("b"))).toBe(true);
    expect(accept(record("c", [["x", "1"]]))).toBe(false);
  });

  test("values compare as UTF-8 bytes", () => {
    const accept = createRecordFilter([{ key: "é" }]);
    expect(accept({ key: Uint8Array.of(0xc3, 0xa9), headers: [] })).toBe(true);
    expect(accept({ key: Uint8Array.of(0xe9), headers: [] })).toBe(false);
  });
});
