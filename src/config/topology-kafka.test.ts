import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { createKafkaClientFinder, resolveKafkaCluster } from "./topology-kafka.ts";
import { createLinks } from "./topology-links.ts";
import { createTlsResolver } from "./topology-tls.ts";

/** The cluster of `text` once the proxy's and the remote server's chains were followed. */
async function clusterOf(text: string, kafkaServers?: string[]) {
  const ctx = await topologyContextOf(text, kafkaServers ? { kafkaServers } : {});
  const links = createLinks(ctx.ns, ctx.fail);
  const finder = createKafkaClientFinder(links);
  const proxy = ctx.ns.bindings.get("north_grpc_kafka_mapping");
  const remote = ctx.ns.bindings.get("west_kafka_grpc_remote_server");
  if (proxy) finder.kafkaClientVia(proxy.routes[0]?.exit, proxy.role);
  if (remote?.role === "kafka-grpc.remote_server") finder.kafkaClientVia(remote.entry, remote.role);
  const kafka = resolveKafkaCluster(ctx, links, createTlsResolver(ctx), finder);
  return { kafka, finder, problems: problemsOf(ctx) };
}

describe("the kafka chain", () => {
  it("follows cache client and cache server to the kafka client and its servers", async () => {
    const { kafka, finder, problems } = await clusterOf(exampleYaml);
    expect([...finder.kafkaClients.keys()]).toEqual(["south_kafka_client"]);
    expect(kafka).toEqual({ servers: ["kafka:29092"] });
    expect(problems).toEqual([]);
  });

  it("uses the servers given on the command line instead of the config's", async () => {
    const { kafka } = await clusterOf(exampleYaml, ["127.0.0.1:9092", "127.0.0.1:9093"]);
    expect(kafka?.servers).toEqual(["127.0.0.1:9092", "127.0.0.1:9093"]);
  });

  it("reports a kafka client without servers", async () => {
    const { kafka, problems } = await clusterOf(
      editExample(["    options:\n      servers:\n        - kafka:29092\n", ""]),
    );
    expect(kafka).toBeUndefined();
    expect(problems).toEqual([
      "bindings.south_kafka_client.options.servers: the kafka client has no servers; add options.servers (host:port list) or pass --kafka-servers",
    ]);
  });

  it("reports a second kafka cluster", async () => {
    const text = editExample(
      ["    entry: north_kafka_cache_client", "    entry: other_kafka_client"],
      [
        "  south_tcp_client:\n",
        "  other_kafka_client:\n    type: kafka\n    kind: client\n    options:\n      servers:\n        - other:9092\n    exit: south_tcp_client\n  south_tcp_client:\n",
      ],
    );
    const { problems } = await clusterOf(text);
    expect(problems).toEqual([
      "bindings: the kafka clients south_kafka_client, other_kafka_client are all used; this gateway connects to one Kafka cluster, so lead every chain to one kafka client",
    ]);
  });

  it("reports a host and port on the kafka client's tcp client", async () => {
    const { problems } = await clusterOf(
      editExample([
        "  south_tcp_client:\n    type: tcp\n    kind: client\n",
        "  south_tcp_client:\n    type: tcp\n    kind: client\n    options:\n      host: kafka\n      port: 29092\n",
      ]),
    );
    expect(problems).toEqual([
      "bindings.south_tcp_client.options: the kafka client connects to its servers (and the brokers they announce); remove host and port from this tcp client",
    ]);
  });
});
