import { describe, expect, it } from "vitest";
import { formatTraceparent, parseTraceparent, traceparentOf, withTraceparent } from "./tracing.ts";

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("W3C traceparent", () => {
  it("parses and formats version 00", () => {
    const context = parseTraceparent(valid);
    expect(context).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      flags: 1,
    });
    expect(formatTraceparent(context as NonNullable<typeof context>)).toBe(valid);
  });

  it("rejects invalid values and reads later versions as 00", () => {
    for (const bad of [
      undefined,
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      `${valid}-extra`,
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    expect(parseTraceparent(`01${valid.slice(2)}-future`)?.spanId).toBe("00f067aa0ba902b7");
  });

  it("finds and replaces the traceparent entry of metadata, keeping the rest in order", () => {
    const metadata: [string, string][] = [
      ["x-a", "1"],
      ["Traceparent", valid],
      ["tracestate", "k=v"],
    ];
    expect(traceparentOf(metadata)).toBe(valid);
    expect(withTraceparent(metadata, "new")).toEqual([
      ["x-a", "1"],
      ["Traceparent", "new"],
      ["tracestate", "k=v"],
    ]);
    expect(withTraceparent([["x-a", "1"]], "new")).toEqual([
      ["x-a", "1"],
      ["traceparent", "new"],
    ]);
  });
});
