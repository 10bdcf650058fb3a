import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { createLinks } from "./topology-links.ts";

/** The binding named `name` in the context's namespace. */
function bindingOf(ctx: Awaited<ReturnType<typeof topologyContextOf>>, name: string) {
  const b = ctx.ns.bindings.get(name);
  if (!b) throw new Error(`no binding ${name}`);
  return b;
}

describe("links between bindings", () => {
  it("follows an exit to a binding of an expected role", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    const links = createLinks(ctx.ns, ctx.fail);
    const http = bindingOf(ctx, "north_http_server");
    expect(links.next(http, ["grpc.server"])?.name).toBe("north_grpc_server");
    expect(problemsOf(ctx)).toEqual([]);
  });

  it("reports an exit to the wrong role once, however often it is followed", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    const links = createLinks(ctx.ns, ctx.fail);
    const http = bindingOf(ctx, "north_http_server");
    expect(links.next(http, ["tls.server"])).toBeUndefined();
    expect(links.next(http, ["tls.server"])).toBeUndefined();
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_http_server.exit: "north_grpc_server" is a grpc server; an http server must lead to a tls server here',
    ]);
  });

  it("reports a binding without an exit, naming what should follow", async () => {
    const ctx = await topologyContextOf(editExample(["    exit: north_grpc_server\n", ""]));
    const links = createLinks(ctx.ns, ctx.fail);
    expect(links.next(bindingOf(ctx, "north_http_server"), ["grpc.server"])).toBeUndefined();
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_http_server.exit: required key "exit" is missing; add the grpc server this http server leads to',
    ]);
  });

  it("reports routes that lead to different bindings", async () => {
    const ctx = await topologyContextOf(
      editExample([
        "        exit: north_http_server\n      - when:",
        "        exit: north_grpc_server\n      - when:",
      ]),
    );
    const links = createLinks(ctx.ns, ctx.fail);
    expect(links.next(bindingOf(ctx, "north_tcp_server"), ["http.server"])).toBeUndefined();
    expect(problemsOf(ctx).join("\n")).toContain(
      "routes lead to different bindings (north_grpc_server, north_tls_server)",
    );
  });

  it("checks a named target's role", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    const links = createLinks(ctx.ns, ctx.fail);
    const tcp = bindingOf(ctx, "north_tcp_server");
    const [first] = tcp.routes;
    expect(links.checkTarget(first?.exit, tcp.role, ["http.server"])?.name).toBe(
      "north_http_server",
    );
    expect(links.checkTarget(first?.exit, tcp.role, ["tls.server"])).toBeUndefined();
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_tcp_server.routes[0].exit: "north_http_server" is an http server; a tcp server must lead to a tls server here',
    ]);
  });
});
