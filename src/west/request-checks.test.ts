import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { maxTimerMs } from "../grpc/deadline.ts";
import { checkMethodNames, checkRequestBytes, clampDeadlineMs } from "./request-checks.ts";

describe("checkMethodNames", () => {
  it("accepts proto names", () => {
    expect(checkMethodNames("grpc.examples.echo.Echo", "UnaryEcho")).toBeUndefined();
    expect(checkMethodNames("Echo", "_x1")).toBeUndefined();
  });

  it.each([
    ["grpc.examples.echo.Echo", "UnaryEcho/../../grpc.health.v1.Health/Check"],
    ["grpc.examples.echo.Echo", "Unary/Echo"],
    ["grpc.examples.echo.Echo", ".."],
    ["grpc.examples.echo.Echo", "Unary Echo"],
    ["grpc.examples.echo.Echo", "1Echo"],
    ["grpc.examples.echo.Echo", ""],
    ["grpc.examples.echo.Echo", "Echo\r\nx: y"],
  ])("refuses method %s/%s as UNIMPLEMENTED", (service, method) => {
    const refusal = checkMethodNames(service, method);
    expect(refusal?.code).toBe(Code.Unimplemented);
    expect(refusal?.message).toMatch(/^method ".*" is not a proto method name$/s);
  });

  it.each([
    "../grpc.health.v1.Health",
    "grpc.health.v1.Health/Check",
    "grpc..Echo",
    ".Echo",
    "Echo.",
    "",
  ])("refuses service %s", (service) => {
    expect(checkMethodNames(service, "Check")).toEqual({
      code: Code.Unimplemented,
      message: `service ${JSON.stringify(service)} is not a proto name`,
    });
  });

  it("cuts a long name short in its message", () => {
    const refusal = checkMethodNames("a/".repeat(500), "M");
    expect(refusal?.message.length).toBeLessThan(200);
  });
});

describe("checkRequestBytes", () => {
  it("refuses more than the limit with RESOURCE_EXHAUSTED", () => {
    expect(checkRequestBytes(100, 100, "request message")).toBeUndefined();
    expect(checkRequestBytes(101, 100, "request message")).toEqual({
      code: Code.ResourceExhausted,
      message: "request message of 101 bytes exceeds the limit of 100 bytes",
    });
  });
});

describe("clampDeadlineMs", () => {
  it("leaves near deadlines alone and brings far ones within a timer's reach", () => {
    expect(clampDeadlineMs(5_000, 1_000)).toBe(5_000);
    const tenYears = 1_000 + 10 * 365 * 86_400_000;
    expect(clampDeadlineMs(tenYears, 1_000)).toBe(1_000 + maxTimerMs);
    expect(clampDeadlineMs(Number.MAX_VALUE, 0)).toBe(maxTimerMs);
  });
});
