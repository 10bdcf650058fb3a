// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${{env.NAME}} is zilla.yaml text here, not a template.
import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { createKafkaClientFinder } from "./topology-kafka.ts";
import { createLinks } from "./topology-links.ts";
import { createTlsResolver } from "./topology-tls.ts";
import { resolveWest } from "./topology-west.ts";

async function westOf(text: string) {
  const ctx = await topologyContextOf(text);
  const links = createLinks(ctx.ns, ctx.fail);
  const finder = createKafkaClientFinder(links);
  const west = resolveWest(ctx, links, createTlsResolver(ctx), finder);
  return { west, finder, problems: problemsOf(ctx) };
}

describe("west pipelines", () => {
  it("routes the request topic to the upstream the client chain reaches", async () => {
    const { west, finder, problems } = await westOf(exampleYaml);
    expect(problems).toEqual([]);
    expect(west).toEqual([
      expect.objectContaining({
        binding: "west_kafka_grpc_remote_server",
        routes: [
          {
            when: [
              {
                topic: "echo-requests",
                replyTo: "echo-responses",
                method: "grpc.examples.echo.Echo/*",
              },
            ],
            with: { scheme: "http", authority: "127.0.0.1:50051" },
          },
        ],
      }),
    ]);
    expect([...finder.kafkaClients.keys()]).toEqual(["south_kafka_client"]);
  });

  it("passes on the tcp client's address when it differs from the authority", async () => {
    const { west } = await westOf(
      editExample(["      host: ${{env.ECHO_SERVER_HOST}}", "      host: echo.internal"]),
    );
    expect(west[0]?.routes[0]?.with.connect).toEqual({ host: "echo.internal", port: 50051 });
  });

  it("reports scheme https without a tls client", async () => {
    const { problems } = await westOf(
      editExample(["          scheme: http\n", "          scheme: https\n"]),
    );
    expect(problems).toEqual([
      "bindings.west_kafka_grpc_remote_server.routes[0].with.scheme: scheme https needs a tls client between the http client and the tcp client; add one, or use scheme: http",
    ]);
  });
});
