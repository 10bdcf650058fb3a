import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { checkReferences, checkRouteMethods } from "./topology-references.ts";

describe("references", () => {
  it("finds nothing wrong in the example", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    checkReferences(ctx);
    checkRouteMethods(ctx);
    expect(problemsOf(ctx)).toEqual([]);
  });

  it("reports an exit to no binding with the closest name", async () => {
    const ctx = await topologyContextOf(
      editExample(["    exit: north_grpc_server\n", "    exit: north_grpc_srever\n"]),
    );
    checkReferences(ctx);
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_http_server.exit: no binding is named "north_grpc_srever"; did you mean "north_grpc_server"?',
    ]);
  });

  it("reports a catalog subject that does not exist", async () => {
    const ctx = await topologyContextOf(
      editExample(["        - subject: echo", "        - subject: echoo"]),
    );
    checkReferences(ctx);
    expect(problemsOf(ctx).join("\n")).toContain(
      'catalog "host_filesystem" has no subject "echoo"; did you mean "echo"?',
    );
  });

  it("reports a route method that no generated service has", async () => {
    const ctx = await topologyContextOf(
      editExample([
        "          - method: grpc.examples.echo.Echo/*\n        exit: north_grpc_kafka_mapping",
        "          - method: grpc.examples.echo.Echo/Nope\n        exit: north_grpc_kafka_mapping",
      ]),
    );
    checkRouteMethods(ctx);
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_grpc_server.routes[0].when[0].method: "grpc.examples.echo.Echo/Nope" is not a method of any generated service; run "buf generate" after adding it to proto/, or fix the name',
    ]);
  });
});
