// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${{env.NAME}} is zilla.yaml text here, not a template.
import { describe, expect, it } from "vitest";
import { interpolateEnv } from "./interpolate.ts";

describe("interpolateEnv", () => {
  it("substitutes env expressions anywhere in strings, with or without spaces", () => {
    const result = interpolateEnv(
      { a: "${{env.HOST}}:${{ env.PORT }}", list: ["x", "${{env.PORT}}"], n: 3, keep: "plain" },
      { HOST: "h", PORT: "7" },
    );
    expect(result.value).toEqual({ a: "h:7", list: ["x", "7"], n: 3, keep: "plain" });
    expect(result.errors).toEqual([]);
    expect([...result.interpolated]).toEqual(["a", "list[1]"]);
    expect(result.unresolved.size).toBe(0);
  });

  it("keeps YAML syntax in a value as text", () => {
    const result = interpolateEnv({ password: "${{env.P}}" }, { P: "a: b # c" });
    expect(result.value).toEqual({ password: "a: b # c" });
  });

  it("reports an unset variable with its path and marks the path unresolved", () => {
    const result = interpolateEnv({ vaults: { v: { password: "${{env.NOPE}}" } } }, {});
    expect(result.errors).toEqual([
      {
        path: "vaults.v.password",
        message:
          "environment variable NOPE is not set; set it, or write the value in place of ${{env.NOPE}}",
      },
    ]);
    expect([...result.unresolved]).toEqual(["vaults.v.password"]);
  });

  it("treats an empty variable as set", () => {
    const result = interpolateEnv({ a: "x${{env.E}}y" }, { E: "" });
    expect(result.value).toEqual({ a: "xy" });
    expect(result.errors).toEqual([]);
  });

  it("reports expressions of other namespaces", () => {
    const result = interpolateEnv({ a: "${{vault.secret}}" }, {});
    expect(result.errors).toEqual([
      {
        path: "a",
        message:
          "unsupported expression ${{vault.secret}}; only ${{env.NAME}} is supported, write the value or use an environment variable",
      },
    ]);
  });
});
