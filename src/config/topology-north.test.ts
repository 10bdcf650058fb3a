import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { createKafkaClientFinder } from "./topology-kafka.ts";
import { createLinks } from "./topology-links.ts";
import { resolveNorth } from "./topology-north.ts";
import { createTlsResolver } from "./topology-tls.ts";

async function northOf(text: string) {
  const ctx = await topologyContextOf(text);
  const links = createLinks(ctx.ns, ctx.fail);
  const finder = createKafkaClientFinder(links);
  const north = resolveNorth(ctx, links, createTlsResolver(ctx), finder);
  return { north, finder, problems: problemsOf(ctx) };
}

describe("north pipelines", () => {
  it("gives the proxy both ports, the grpc server's services and methods, and its routes", async () => {
    const { north, finder, problems } = await northOf(exampleYaml);
    expect(problems).toEqual([]);
    expect(north).toHaveLength(1);
    const [proxy] = north;
    expect(proxy?.binding).toBe("north_grpc_kafka_mapping");
    expect(proxy?.listeners.map((l) => [l.port, l.tls !== undefined])).toEqual([
      [7151, false],
      [7153, true],
    ]);
    expect(proxy?.services).toEqual(["grpc.examples.echo.Echo"]);
    expect(proxy?.methods).toEqual(["grpc.examples.echo.Echo/*"]);
    expect(proxy?.routes[0]?.with).toMatchObject({ topic: "echo-requests" });
    // The proxy's routes were followed to their kafka client.
    expect([...finder.kafkaClients.keys()]).toEqual(["south_kafka_client"]);
  });

  it("reports a port a route names that the server does not listen on", async () => {
    const { problems } = await northOf(
      editExample(["          - port: 7153", "          - port: 7154"]),
    );
    expect(problems.join("\n")).toContain(
      "port 7154 is not one of this server's ports (7151, 7153); add it to options.port or fix the route",
    );
  });

  it("reports an http server without h2", async () => {
    const { problems } = await northOf(
      editExample([
        "      versions:\n        - h2\n      access",
        "      versions:\n        - http/1.1\n      access",
      ]),
    );
    expect(problems).toEqual([
      "bindings.north_http_server.options.versions: gRPC needs HTTP/2; add h2 to versions",
    ]);
  });

  it("reports a proxy that no tcp server leads to", async () => {
    const { north, problems } = await northOf(
      editExample([
        "        exit: north_grpc_kafka_mapping",
        "        exit: north_kafka_cache_client",
      ]),
    );
    expect(north).toEqual([]);
    expect(problems.join("\n")).toContain("no tcp server leads to this grpc-kafka proxy");
  });
});
