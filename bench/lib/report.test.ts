import { describe, expect, it } from "vitest";
import { bytes, markdownTable, textTable } from "./report.ts";

describe("tables", () => {
  it("aligns text columns: first left, the rest right", () => {
    const text = textTable(
      ["name", "n"],
      [
        ["a", "1"],
        ["bb", "100"],
      ],
    );
    expect(text.split("\n")).toEqual(["name    n", "----  ---", "a       1", "bb    100"]);
  });

  it("writes a Markdown table with right-aligned numbers", () => {
    expect(markdownTable(["a", "b"], [["x", "1"]])).toBe("| a | b |\n| :--- | ---: |\n| x | 1 |");
  });
});

describe("bytes", () => {
  it("picks a unit", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(4096)).toBe("4.00 KiB");
    expect(bytes(3 * 2 ** 20)).toBe("3.0 MiB");
    expect(bytes(null)).toBe("n/a");
  });
});
