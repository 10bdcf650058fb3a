import { describe, expect, it } from "vitest";
import { parseYamlSource, positionOf } from "./yaml-source.ts";

describe("parseYamlSource", () => {
  it("returns the tree and where each path is written", () => {
    const source = parseYamlSource("a:\n  b:\n    - x\n    - y: 1\n");
    if (!source.ok) throw new Error("expected YAML to parse");
    expect(source.value).toEqual({ a: { b: ["x", { y: 1 }] } });
    expect(source.positions.get("a.b")).toEqual({ line: 2, column: 3 });
    expect(source.positions.get("a.b[1].y")).toEqual({ line: 4, column: 7 });
    expect(positionOf(source.positions, "a.b[1].y.missing")).toEqual({ line: 4, column: 7 });
    expect(positionOf(source.positions, "nothing")).toEqual({ line: 1, column: 1 });
  });

  it("reports a syntax error once per line, with its line and column (no path: the caller names the file)", () => {
    const source = parseYamlSource("a: 1\nb: [1, 2\nc: 3\n");
    expect(source.ok).toBe(false);
    if (source.ok) return;
    expect(source.errors).toEqual([
      {
        path: "",
        message:
          "YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]; fix the file at this line",
        line: 3,
        column: 1,
      },
    ]);
  });

  it("reports only the first syntax error, counting the lines it throws off after it", () => {
    const source = parseYamlSource("a:\n  [x\n  b: 1\n  c: 2\n");
    expect(source.ok).toBe(false);
    if (source.ok) return;
    expect(source.errors).toHaveLength(1);
    expect(source.errors[0]?.line).toBe(2);
    expect(source.errors[0]?.message).toMatch(
      /; fix the file at this line \(2 more after it, often caused by this one\)$/,
    );
  });
});
