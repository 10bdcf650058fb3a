import { describe, expect, it } from "vitest";
import { protoServiceNames } from "./proto-services.ts";

describe("protoServiceNames", () => {
  it("names each service with its package", () => {
    const proto = `syntax = "proto3";
package grpc.examples.echo;
// service Hidden {}
/* service AlsoHidden { } */
option go_package = "x//service Quoted {";
service Echo {
  rpc UnaryEcho(EchoRequest) returns (EchoResponse) {}
}
service Other{}
`;
    expect(protoServiceNames(proto)).toEqual([
      "grpc.examples.echo.Echo",
      "grpc.examples.echo.Other",
    ]);
  });

  it("uses the bare name without a package, and finds nothing in a proto without services", () => {
    expect(protoServiceNames("service S {}")).toEqual(["S"]);
    expect(protoServiceNames('syntax = "proto3"; message M {}')).toEqual([]);
  });
});
