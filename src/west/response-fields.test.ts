import { describe, expect, it } from "vitest";
import type { HeaderField } from "../h2/hpack.ts";
import { InvalidFieldError, ResponseFields } from "./response-fields.ts";

/** What Fetch's `Headers` makes of the same fields: the behaviour ResponseFields keeps. */
function viaHeaders(fields: readonly HeaderField[]): [string, string][] {
  const h = new Headers();
  for (const [name, value] of fields) if (!name.startsWith(":")) h.append(name, value);
  const out: [string, string][] = [];
  h.forEach((value, name) => {
    out.push([name, value]);
  });
  return out;
}

describe("ResponseFields", () => {
  const cases: HeaderField[][] = [
    [],
    [[":status", "200"]],
    [
      [":status", "200"],
      ["content-type", "application/grpc"],
    ],
    [
      ["x-b", "2"],
      ["x-a", "1"],
      ["x-b", "3"],
      ["grpc-status", "0"],
    ],
    [
      ["X-Upper", "v"],
      ["x-upper", "w"],
    ],
    [
      ["set-cookie", "a=1"],
      ["x-z", " padded\t"],
      ["set-cookie", "b=2"],
    ],
    [["x-empty", ""]],
    [["x-latin", "caf\u00e9"]],
  ];

  it.each(cases.map((c) => [c]))("orders, joins and trims as Headers does: %j", (fields) => {
    const got = ResponseFields.from(fields);
    expect(got.entries()).toEqual(viaHeaders(fields));
    const reference = new Headers(viaHeaders(fields));
    for (const name of ["x-a", "x-b", "x-upper", "x-z", "content-type", "missing"]) {
      expect(got.get(name)).toBe(reference.get(name) ?? undefined);
      expect(got.has(name)).toBe(reference.has(name));
    }
  });

  it("leaves pseudo-headers out", () => {
    const got = ResponseFields.from([
      [":status", "200"],
      ["grpc-status", "0"],
    ]);
    expect(got.has(":status")).toBe(false);
    expect(got.entries()).toEqual([["grpc-status", "0"]]);
  });

  it.each<HeaderField>([
    ["", "v"],
    ["bad name", "v"],
    ["x-\u00e9", "v"],
    ["x-ok", "line\nbreak"],
    ["x-ok", "carriage\rreturn"],
    ["x-ok", "nul\u0000byte"],
  ])("refuses what Headers refuses: %j", (name, value) => {
    expect(() => viaHeaders([[name, value]])).toThrow(TypeError);
    expect(() => ResponseFields.from([[name, value]])).toThrow(InvalidFieldError);
  });

  it("is empty and shared when there is nothing", () => {
    expect(ResponseFields.from([[":status", "200"]])).toBe(ResponseFields.empty);
    expect(ResponseFields.empty.entries()).toEqual([]);
    expect(ResponseFields.empty.get("x")).toBeUndefined();
  });
});
