import { describe, expect, it } from "vitest";
import { StreamTable } from "./stream-table.ts";

const stream = (id: number) => ({ id });

describe("stream table", () => {
  it("finds streams by id as they open, close and open again", () => {
    const table = new StreamTable<{ id: number }>();
    for (let id = 1; id <= 199; id += 2) table.add(stream(id));
    expect(table.size).toBe(100);
    expect(table.get(1)?.id).toBe(1);
    expect(table.get(101)?.id).toBe(101);
    expect(table.get(199)?.id).toBe(199);
    expect(table.get(2)).toBeUndefined();
    expect(table.get(201)).toBeUndefined();
    // Every third stream closes: the rest are still found, the closed ones are not.
    for (let id = 1; id <= 199; id += 6) expect(table.delete(id)).toBe(true);
    expect(table.delete(1)).toBe(false);
    for (let id = 1; id <= 199; id += 2) {
      expect(table.get(id)?.id).toBe((id - 1) % 6 === 0 ? undefined : id);
    }
    table.add(stream(201));
    expect(table.get(201)?.id).toBe(201);
    expect(table.values().map((s) => s.id)).toEqual([
      ...Array.from({ length: 100 }, (_, i) => 2 * i + 1).filter((id) => (id - 1) % 6 !== 0),
      201,
    ]);
  });

  it("keeps a stream added out of order in its place", () => {
    const table = new StreamTable<{ id: number }>();
    for (const id of [5, 1, 9, 3, 7]) table.add(stream(id));
    expect(table.values().map((s) => s.id)).toEqual([1, 3, 5, 7, 9]);
    for (const id of [1, 3, 5, 7, 9]) expect(table.get(id)?.id).toBe(id);
  });

  it("values() is a copy and takeAll() empties the table", () => {
    const table = new StreamTable<{ id: number }>();
    for (const id of [1, 3, 5]) table.add(stream(id));
    const seen: number[] = [];
    for (const s of table.values()) {
      seen.push(s.id);
      table.delete(s.id);
    }
    expect(seen).toEqual([1, 3, 5]);
    expect(table.size).toBe(0);
    table.add(stream(7));
    expect(table.takeAll().map((s) => s.id)).toEqual([7]);
    expect(table.size).toBe(0);
    expect(table.get(7)).toBeUndefined();
  });
});
