/**
 * The kafka client binding's extension options (group timings, produce retry maximum), as
 * zilla.yaml writes them and as the CLI flags replace them: decoded strictly, checked
 * together, and carried into the resolved config.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { formatConfigErrors } from "../../src/config/format-pipelines.ts";
import { parseConfig } from "../../src/config/load-config.ts";
import type { KafkaGroupTimings } from "../../src/config/types.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

const exampleDir = fileURLToPath(new URL("../../examples/grpc.kafka.proxy/", import.meta.url));
const exampleText = readFileSync(join(exampleDir, "zilla.yaml"), "utf8");
const env = {
  KEYSTORE_PASSWORD: "zilla-example",
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};
const servers = `      servers:
        - kafka:29092
`;

let registry: ServiceRegistry;
beforeAll(async () => {
  registry = await loadServiceRegistry();
});

/** The example with `options` of the kafka client extended by `yaml` (indented). */
async function load(yaml: string, kafkaGroup?: KafkaGroupTimings) {
  expect(exampleText).toContain(servers);
  const text = exampleText.replace(servers, servers + yaml);
  return parseConfig(text, exampleDir, {
    registry,
    env,
    kafkaServers: ["127.0.0.1:9092"],
    ...(kafkaGroup ? { kafkaGroup } : {}),
  });
}

describe("kafka client options.group and options.produce", () => {
  it("carries the timings into the config and the Kafka handle", async () => {
    const result = await load(`      group:
        session-timeout-ms: 12000
        heartbeat-interval-ms: 1000
        rebalance-timeout-ms: 20000
        unready-after-ms: 5000
      produce:
        retry-max-ms: 45000
`);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.kafka.group).toEqual({
      sessionTimeoutMs: 12_000,
      heartbeatIntervalMs: 1_000,
      rebalanceTimeoutMs: 20_000,
      unreadyAfterMs: 5_000,
    });
    expect(result.config.kafka.produceRetryMaxMs).toBe(45_000);
    const kafka = createKafka(result.config.kafka);
    expect(kafka.group?.sessionTimeoutMs).toBe(12_000);
    expect(kafka.wire.produceRetryMaxMs).toBe(45_000);
  });

  it("lets CLI flags replace the file's timings", async () => {
    const result = await load(
      `      group:
        session-timeout-ms: 12000
`,
      { sessionTimeoutMs: 45_000, heartbeatIntervalMs: 15_000 },
    );
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.kafka.group).toEqual({
      sessionTimeoutMs: 45_000,
      heartbeatIntervalMs: 15_000,
    });
  });

  it("rejects unknown keys, bad numbers and a heartbeat not below the session timeout", async () => {
    const result = await load(`      group:
        session-timeout: 12000
        heartbeat-interval-ms: fast
      produce:
        retry-max-ms: -1
`);
    expect(result.ok).toBe(false);
    const text = result.ok ? "" : formatConfigErrors(result.errors);
    expect(text).toMatch(
      /options\.group\.session-timeout: unknown key "session-timeout"; did you mean "session-timeout-ms"\?/,
    );
    expect(text).toMatch(/heartbeat-interval-ms: must be a whole number/);
    expect(text).toMatch(/retry-max-ms: must be between 0 and/);

    const late = await load(`      group:
        heartbeat-interval-ms: 30000
`);
    expect(late.ok).toBe(false);
    expect(late.ok ? "" : formatConfigErrors(late.errors)).toMatch(
      /heartbeat interval \(30000 ms\) must be below the session timeout \(30000 ms\)/,
    );
  });
});
