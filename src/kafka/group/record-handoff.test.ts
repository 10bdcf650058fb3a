import { describe, expect, it } from "vitest";
import { keyText } from "./record-handoff.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("keyText", () => {
  it("takes the header value a key equals (a request keyed by its correlation id)", () => {
    const id = "0b1d5f7e-3c2a-4e1b-9a8d-6f5e4d3c2b1a-0123456789abcdef0123456789abcdef";
    expect(
      keyText(bytes(id), [
        ["zilla:service", "a.B"],
        ["zilla:correlation-id", id],
      ]),
    ).toBe(id);
  });

  it("decodes a key no header holds, one a header almost holds, and non-ASCII keys", () => {
    expect(keyText(bytes("tenant-7"), [["zilla:correlation-id", "tenant-8"]])).toBe("tenant-7");
    expect(keyText(bytes("caf\u00e9"), [["x", "caf\u00e9"]])).toBe("caf\u00e9");
    // Latin-1 é has one char code, 0xe9; a key of the single byte 0xe9 is not that text.
    expect(keyText(Uint8Array.of(0xe9), [["x", "\u00e9"]])).toBe("\ufffd");
    expect(keyText(new Uint8Array(0), [])).toBe("");
  });
});
