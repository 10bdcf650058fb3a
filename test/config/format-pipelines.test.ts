import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { formatConfigErrors, formatPipelines } from "../../src/config/format-pipelines.ts";
import { loadConfig } from "../../src/config/load-config.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";

const examplePath = join(
  fileURLToPath(new URL("../../examples/grpc.kafka.proxy/", import.meta.url)),
  "zilla.yaml",
);

describe("formatPipelines", () => {
  it("summarizes the example's listeners, services, routes, upstream and Kafka servers", async () => {
    const result = await loadConfig(examplePath, {
      registry: await loadServiceRegistry(),
      env: {
        KEYSTORE_PASSWORD: "zilla-example",
        ECHO_SERVER_HOST: "echo",
        ECHO_SERVER_PORT: "50051",
      },
    });
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(formatPipelines(result.config)).toBe(
      [
        "namespace example",
        "kafka kafka:29092",
        "",
        "north north_grpc_kafka_mapping",
        "  listen 0.0.0.0:7151 h2c",
        "  listen 0.0.0.0:7153 tls (alpn h2, sni localhost, pkcs12 keystore)",
        "  services grpc.examples.echo.Echo (methods grpc.examples.echo.Echo/*)",
        "  access-control cross-origin",
        "  route grpc.examples.echo.Echo/* → produce echo-requests (acks leader_only, reply-to echo-responses)",
        "  idempotency metadata idempotency-key",
        "",
        "west west_kafka_grpc_remote_server (consumer group zilla:example-west_kafka_grpc_remote_server, acks leader_only)",
        "  route echo-requests (reply-to echo-responses, method grpc.examples.echo.Echo/*) → http://echo:50051",
        "",
        "telemetry exporters stdout_logs_exporter (stdout)",
      ].join("\n"),
    );
  });
});

describe("formatConfigErrors", () => {
  it("prints one line per error as path: message", () => {
    expect(
      formatConfigErrors([
        {
          path: "bindings.a.exit",
          message: 'no binding is named "b"; add it under bindings or fix the name',
        },
        { path: "name", message: "required", line: 1, column: 1 },
      ]),
    ).toBe(
      'bindings.a.exit: no binding is named "b"; add it under bindings or fix the name\nname: required',
    );
  });
});
