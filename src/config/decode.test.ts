// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${{env.NAME}} is zilla.yaml text here, not a template.
import { describe, expect, it } from "vitest";
import { closestName } from "./config-error.ts";
import {
  type DecodeContext,
  readChoice,
  readInteger,
  readMapping,
  readString,
  unknownKeyMessage,
} from "./decode.ts";
import { readPorts } from "./decode-transport-options.ts";

function context(interpolated: string[] = [], unresolved: string[] = []): DecodeContext {
  return { errors: [], interpolated: new Set(interpolated), unresolved: new Set(unresolved) };
}

describe("strict readers", () => {
  it("reports unknown and missing keys of a mapping, each with its path", () => {
    const ctx = context();
    readMapping(ctx, { hots: "x", extra: 1 }, "options", {
      keys: ["host", "port"],
      required: ["port"],
    });
    expect(ctx.errors).toEqual([
      {
        path: "options.hots",
        message: 'unknown key "hots"; did you mean "host"? (valid keys here: host, port)',
      },
      {
        path: "options.extra",
        message: 'unknown key "extra"; remove it (valid keys here: host, port)',
      },
      { path: "options.port", message: 'required key "port" is missing; add it' },
    ]);
  });

  it("accepts a number from an environment variable where a number is needed", () => {
    const ctx = context(["p"]);
    expect(readInteger(ctx, "50051", "p", { min: 1, max: 65535 })).toBe(50051);
    expect(readInteger(ctx, "50051", "q")).toBeUndefined();
    expect(ctx.errors).toEqual([
      { path: "q", message: 'must be a whole number, found a string ("50051")' },
    ]);
  });

  it("says how to fix a number written where a string is needed, and a bad choice", () => {
    const ctx = context();
    readString(ctx, 123456, "password");
    readChoice(ctx, "leader_onyl", "acks", ["none", "leader_only", "in_sync_replicas"]);
    expect(ctx.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'password: must be a string, found a number (123456); quote it: "123456"',
      'acks: "leader_onyl" is not valid here; did you mean "leader_only"? (one of: none, leader_only, in_sync_replicas)',
    ]);
  });

  it("does not check a value whose environment variable was missing", () => {
    const ctx = context([], ["port"]);
    expect(readInteger(ctx, "${{env.PORT}}", "port")).toBeUndefined();
    expect(ctx.errors).toEqual([]);
  });

  it("suggests only names that are a likely typo", () => {
    expect(closestName("prot", ["host", "port"])).toBe("port");
    expect(closestName("north_tls_srv", ["north_tls_server", "north_http_server"])).toBe(
      "north_tls_server",
    );
    expect(closestName("zzz", ["host", "port"])).toBeUndefined();
    expect(unknownKeyMessage("a", [])).toBe(
      'unknown key "a"; nothing is configured here, remove it',
    );
  });
});

describe("readPorts", () => {
  it("reads a port, a range, and a list of both", () => {
    const ctx = context();
    expect(readPorts(ctx, 7151, "p")).toEqual([7151]);
    expect(readPorts(ctx, "7151-7153", "p")).toEqual([7151, 7152, 7153]);
    expect(readPorts(ctx, [7000, "7151-7152", "8080"], "p")).toEqual([7000, 7151, 7152, 8080]);
    expect(ctx.errors).toEqual([]);
  });

  it("reports bad ports with their path", () => {
    const ctx = context();
    readPorts(ctx, [70000, "9-1", "http", "1-5000"], "p");
    expect(ctx.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      "p[0]: must be between 0 and 65535, found 70000",
      'p[1]: "9-1" is not a valid port range; write it as low-high within 1-65535',
      'p[2]: must be a port number or a range such as 7151-7153, found "http"',
      'p[3]: "1-5000" spans more than 1024 ports; list fewer ports',
    ]);
  });
});
