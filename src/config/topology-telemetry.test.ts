import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { resolveTelemetry } from "./topology-telemetry.ts";
import { createTlsResolver } from "./topology-tls.ts";

describe("telemetry", () => {
  it("keeps the exporters as written, with defaults filled in", async () => {
    const ctx = await topologyContextOf(
      editExample([
        "      type: stdout\n",
        "      type: stdout\n    metrics_exporter:\n      type: prometheus\n      options:\n        endpoints:\n          - scheme: http\n            port: 7190\n",
      ]),
    );
    const telemetry = resolveTelemetry(ctx, createTlsResolver(ctx));
    expect(telemetry?.exporters).toEqual([
      { name: "stdout_logs_exporter", type: "stdout" },
      {
        name: "metrics_exporter",
        type: "prometheus",
        endpoints: [{ scheme: "http", port: 7190, path: "/metrics" }],
      },
    ]);
  });

  it("is absent when the config has no telemetry", async () => {
    const text = exampleYaml.slice(0, exampleYaml.indexOf("telemetry:"));
    const ctx = await topologyContextOf(text);
    expect(resolveTelemetry(ctx, createTlsResolver(ctx))).toBeUndefined();
  });
});
