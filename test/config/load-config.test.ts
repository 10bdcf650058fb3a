// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${{env.NAME}} is zilla.yaml text here, not a template.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { formatConfigErrors } from "../../src/config/format-pipelines.ts";
import { type LoadConfigResult, loadConfig, parseConfig } from "../../src/config/load-config.ts";
import {
  defaultGrpcKafkaOptions,
  defaultKafkaGrpcOptions,
  type GatewayConfig,
} from "../../src/config/types.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

const exampleDir = fileURLToPath(new URL("../../examples/grpc.kafka.proxy/", import.meta.url));
const examplePath = join(exampleDir, "zilla.yaml");
const exampleText = readFileSync(examplePath, "utf8");
const env = {
  KEYSTORE_PASSWORD: "zilla-example",
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};
const kafkaServers = ["127.0.0.1:9092"];

let registry: ServiceRegistry;
beforeAll(async () => {
  registry = await loadServiceRegistry();
});

/** The example with one piece of text replaced (the piece must be there). */
function edit(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

async function parse(text: string, vars: Record<string, string | undefined> = env) {
  return parseConfig(text, exampleDir, { registry, env: vars, kafkaServers });
}

/** The error lines (`path: message`) of a config that must not load. */
async function errorsOf(text: string, vars?: Record<string, string | undefined>) {
  const result = await parse(text, vars);
  if (result.ok) throw new Error("expected the config to be rejected");
  return formatConfigErrors(result.errors).split("\n");
}

function expectOk(result: LoadConfigResult): GatewayConfig {
  if (!result.ok) throw new Error(formatConfigErrors(result.errors));
  return result.config;
}

describe("the grpc.kafka.proxy example", () => {
  it("loads unchanged and resolves to the example's pipelines", async () => {
    const config = expectOk(await loadConfig(examplePath, { registry, env, kafkaServers }));
    const pfx = readFileSync(join(exampleDir, "tls/localhost.p12"));
    const expected: GatewayConfig = {
      name: "example",
      kafka: { servers: ["127.0.0.1:9092"] },
      north: [
        {
          binding: "north_grpc_kafka_mapping",
          listeners: [
            { host: "0.0.0.0", port: 7151 },
            {
              host: "0.0.0.0",
              port: 7153,
              tls: {
                pfx: new Uint8Array(pfx),
                passphrase: "zilla-example",
                sni: ["localhost"],
                alpn: ["h2"],
              },
            },
          ],
          accessControl: { policy: "cross-origin" },
          services: ["grpc.examples.echo.Echo"],
          methods: ["grpc.examples.echo.Echo/*"],
          routes: [
            {
              when: [{ method: "grpc.examples.echo.Echo/*" }],
              with: {
                capability: "produce",
                topic: "echo-requests",
                acks: "leader_only",
                replyTo: "echo-responses",
              },
            },
          ],
          options: defaultGrpcKafkaOptions(),
        },
      ],
      west: [
        {
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
          options: { ...defaultKafkaGrpcOptions(), acks: "leader_only" },
        },
      ],
      telemetry: {
        attributes: {},
        metrics: [],
        exporters: [{ name: "stdout_logs_exporter", type: "stdout" }],
        bindings: {},
      },
    };
    expect(config).toEqual(expected);
  });

  it("keeps the kafka client's servers when no override is given", async () => {
    const result = await parseConfig(exampleText, exampleDir, { registry, env });
    expect(expectOk(result).kafka.servers).toEqual(["kafka:29092"]);
  });

  it("reports a missing config file with its path", async () => {
    const result = await loadConfig(join(exampleDir, "nope.yaml"), { registry, env });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(formatConfigErrors(result.errors)).toBe(
        `${join(exampleDir, "nope.yaml")}: cannot read the config file: the file does not exist; check the path`,
      );
    }
  });
});

describe("validation: one error per problem, with its path and what to do", () => {
  it("reports an unknown key, and the key that was probably meant", async () => {
    const text = edit(
      exampleText,
      "      host: 0.0.0.0\n",
      "      host: 0.0.0.0\n      prot: 7152\n",
    );
    const result = await parse(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      {
        path: "bindings.north_tcp_server.options.prot",
        message: 'unknown key "prot"; did you mean "port"? (valid keys here: host, port)',
        line: 24,
        column: 7,
      },
    ]);
  });

  it("reads the tls server's lowest version, and refuses one it does not know", async () => {
    const withVersion = (version: string) =>
      edit(
        exampleText,
        "      alpn:\n        - h2\n",
        `      alpn:\n        - h2\n      version: ${version}\n`,
      );
    const config = expectOk(await parse(withVersion("TLSv1.3")));
    expect(config.north[0]?.listeners[1]?.tls?.minVersion).toBe("TLSv1.3");
    expect(await errorsOf(withVersion("TLSv1.1"))).toEqual([
      'bindings.north_tls_server.options.version: "TLSv1.1" is not valid here; did you mean "TLSv1.2"? (one of: TLSv1.2, TLSv1.3)',
    ]);
  });

  it("reports a value of the wrong type", async () => {
    const text = edit(exampleText, "      sni:\n        - localhost\n", "      sni: localhost\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.north_tls_server.options.sni: must be a list, found a string ("localhost"); write it as a list: [localhost]',
    ]);
  });

  it("reports an environment value that is not the number the key needs", async () => {
    expect(await errorsOf(exampleText, { ...env, ECHO_SERVER_PORT: "fifty" })).toEqual([
      'bindings.west_kafka_grpc_remote_server.routes[0].with.authority: "127.0.0.1:fifty" must be host:port, e.g. localhost:50051',
      'bindings.west_tcp_client.options.port: must be a whole number, found a string ("fifty")',
    ]);
  });

  it("reports a missing required key", async () => {
    const text = edit(
      exampleText,
      "          topic: echo-requests\n          acks",
      "          acks",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.north_grpc_kafka_mapping.routes[0].with.topic: required key "topic" is missing; add the Kafka topic the requests are produced to',
    ]);
  });

  it("reports a dangling exit", async () => {
    const text = edit(
      exampleText,
      "        exit: north_tls_server\n",
      "        exit: north_tls_srv\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.north_tcp_server.routes[1].exit: no binding is named "north_tls_srv"; did you mean "north_tls_server"?',
    ]);
  });

  it("reports a dangling entry and vault", async () => {
    let text = edit(
      exampleText,
      "    entry: north_kafka_cache_client\n",
      "    entry: kafka_cache\n",
    );
    text = edit(text, "    vault: my_servers\n", "    vault: servers\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.north_tls_server.vault: no vault is named "servers"; add it under vaults or fix the name',
      'bindings.west_kafka_grpc_remote_server.entry: no binding is named "kafka_cache"; add it under bindings or fix the name',
    ]);
  });

  it("reports an unsupported binding type", async () => {
    const text = edit(
      exampleText,
      "telemetry:\n",
      "  north_sse_server:\n    type: sse\n    kind: server\ntelemetry:\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.north_sse_server.type: binding type "sse" is not supported by this gateway (supported: grpc, grpc-kafka, http, kafka, kafka-grpc, tcp, tls)',
    ]);
  });

  it("reports an unsupported kind", async () => {
    const text = edit(
      exampleText,
      "  south_tcp_client:\n    type: tcp\n    kind: client\n",
      "  south_tcp_client:\n    type: tcp\n    kind: proxy\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.south_tcp_client.kind: kind "proxy" is not supported for a tcp binding; use server or client',
    ]);
  });

  it("reports a route naming a method that is not generated", async () => {
    const text = edit(
      exampleText,
      "      - when:\n          - method: grpc.examples.echo.Echo/*\n        exit: north_grpc_kafka_mapping\n",
      "      - when:\n          - method: grpc.examples.echo.Echo/Nope\n        exit: north_grpc_kafka_mapping\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.north_grpc_server.routes[0].when[0].method: "grpc.examples.echo.Echo/Nope" is not a method of any generated service; run "buf generate" after adding it to proto/, or fix the name',
    ]);
  });

  it("reports a route naming a service that is not generated", async () => {
    const text = edit(
      exampleText,
      "          - topic: echo-requests\n            reply-to: echo-responses\n            method: grpc.examples.echo.Echo/*\n",
      "          - topic: echo-requests\n            reply-to: echo-responses\n            method: grpc.examples.echo.Echoes/*\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.west_kafka_grpc_remote_server.routes[0].when[0].method: "grpc.examples.echo.Echoes/*" matches no generated service; run "buf generate" after adding its proto to proto/, or fix the name',
    ]);
  });

  it("reports an unknown catalog subject", async () => {
    const text = edit(exampleText, "        - subject: echo\n", "        - subject: ech\n");
    expect(await errorsOf(text)).toEqual([
      'bindings.north_grpc_server.catalog.host_filesystem[0].subject: catalog "host_filesystem" has no subject "ech"; did you mean "echo"? (its subjects: echo); add it under catalogs.host_filesystem.options.subjects or fix the name',
    ]);
  });

  it("reports a catalog file that does not exist", async () => {
    const text = edit(exampleText, "path: proto/echo.proto", "path: proto/missing.proto");
    expect(await errorsOf(text)).toEqual([
      `catalogs.host_filesystem.options.subjects.echo.path: file "proto/missing.proto" does not exist (looked for ${join(exampleDir, "proto/missing.proto")}); create it or fix the path, which is relative to the config file's directory`,
    ]);
  });

  it("reports a keystore that does not exist", async () => {
    const text = edit(exampleText, "store: tls/localhost.p12", "store: tls/missing.p12");
    expect(await errorsOf(text)).toEqual([
      `vaults.my_servers.options.keys.store: keystore "tls/missing.p12" does not exist (looked for ${join(exampleDir, "tls/missing.p12")}); create it (see examples/grpc.kafka.proxy/README.md) or fix the path, which is relative to the config file's directory`,
    ]);
  });

  it("reports a keystore password that does not open the keystore", async () => {
    const errors = await errorsOf(exampleText, { ...env, KEYSTORE_PASSWORD: "wrong" });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^vaults\.my_servers\.options\.keys\.password: wrong password for keystore \S*tls\/localhost\.p12 \(the password comes from environment variable KEYSTORE_PASSWORD\); set KEYSTORE_PASSWORD to the keystore's password$/,
    );
  });

  it("reports an unset environment variable, and nothing that follows from it", async () => {
    const result = await parse(exampleText, { ...env, KEYSTORE_PASSWORD: undefined });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      {
        path: "vaults.my_servers.options.keys.password",
        message:
          "environment variable KEYSTORE_PASSWORD is not set; set it, or write the value in place of ${{env.KEYSTORE_PASSWORD}}",
        line: 17,
        column: 9,
      },
    ]);
  });

  it("reports a YAML syntax error with its line and column", async () => {
    const text = edit(exampleText, "      alpn:\n        - h2\n", "      alpn: [h2\n");
    expect(await errorsOf(text)).toEqual([
      "line 44:5: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]; fix the file at this line",
    ]);
  });

  it("reports a duplicate key as written", async () => {
    const text = edit(exampleText, "name: example\n", "name: example\nname: other\n");
    expect(await errorsOf(text)).toEqual([
      "line 3:1: duplicate key: Map keys must be unique; fix the file at this line",
    ]);
  });

  it("reports every problem of a file together, in file order", async () => {
    let text = edit(exampleText, "path: proto/echo.proto", "path: proto/missing.proto");
    text = edit(text, "      host: 0.0.0.0\n", "      host: 0.0.0.0\n      prot: 7152\n");
    text = edit(text, "        exit: north_tls_server\n", "        exit: north_tls_srv\n");
    text = edit(text, "          acks: leader_only\n", "          acks: leader\n");
    text = edit(
      text,
      "    kind: cache_server\n",
      "    kind: cache_server\n    options:\n      bootstrap: echo-requests\n",
    );
    const errors = await errorsOf(text, { ...env, ECHO_SERVER_HOST: undefined });
    expect(errors).toEqual([
      `catalogs.host_filesystem.options.subjects.echo.path: file "proto/missing.proto" does not exist (looked for ${join(exampleDir, "proto/missing.proto")}); create it or fix the path, which is relative to the config file's directory`,
      'bindings.north_tcp_server.options.prot: unknown key "prot"; did you mean "port"? (valid keys here: host, port)',
      'bindings.north_tcp_server.routes[1].exit: no binding is named "north_tls_srv"; did you mean "north_tls_server"?',
      'bindings.north_grpc_kafka_mapping.routes[0].with.acks: "leader" is not valid here; use one of: none, leader_only, in_sync_replicas',
      'bindings.south_kafka_cache_server.options.bootstrap: must be a list, found a string ("echo-requests"); write it as a list: [echo-requests]',
      "bindings.west_kafka_grpc_remote_server.routes[0].with.authority: environment variable ECHO_SERVER_HOST is not set; set it, or write the value in place of ${{env.ECHO_SERVER_HOST}}",
      "bindings.west_tcp_client.options.host: environment variable ECHO_SERVER_HOST is not set; set it, or write the value in place of ${{env.ECHO_SERVER_HOST}}",
    ]);
  });
});
