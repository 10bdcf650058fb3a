/**
 * Everything operational a running gateway needs from outside the gateway itself: its
 * telemetry (metrics registry, tracer), its readiness, the Hono app that answers /healthz,
 * /readyz and /metrics (on the ops port, and behind the north ports if asked), and one HTTP
 * server per zilla.yaml `prometheus` exporter endpoint. Created before the gateway starts, so readiness
 * can answer 503 while it does.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import type { GatewayConfig } from "../config/types.ts";
import { createMetricsApp, createOpsApp } from "./ops-app.ts";
import { createReadiness, type Readiness, type ReadinessOptions } from "./readiness.ts";
import { createTelemetry, type Telemetry, type TelemetryOptions } from "./telemetry.ts";

export interface OpsHost {
  readonly telemetry: Telemetry;
  readonly readiness: Readiness;
  /** GET /healthz, /readyz, /metrics and each prometheus endpoint's path. */
  readonly app: Hono;
  /**
   * Starts an HTTP server for each prometheus exporter endpoint of the config (serving only
   * its path); resolves to the bound ports, in config order. An endpoint on `opsPort` is
   * served by the ops app itself (it has every endpoint's path).
   */
  listenExporters(host?: string, opsPort?: number): Promise<number[]>;
  /** Stops the exporter servers and exports the spans still buffered. */
  close(): Promise<void>;
}

export type OpsHostOptions = TelemetryOptions & ReadinessOptions;

/** Creates the telemetry, readiness and ops app for `config`. */
export async function createOpsHost(
  config: GatewayConfig,
  options: OpsHostOptions = {},
): Promise<OpsHost> {
  const telemetry = await createTelemetry(config, options);
  const readiness = createReadiness(options);
  const metrics = () => telemetry.registry.expose();
  const endpoints = telemetry.prometheusEndpoints;
  const app = createOpsApp({
    ready: () => readiness.check(),
    metrics,
    metricsPaths: endpoints.map((e) => e.path),
  });
  const servers: Server[] = [];
  return {
    telemetry,
    readiness,
    app,
    async listenExporters(host = "0.0.0.0", opsPort?: number) {
      const ports: number[] = [];
      for (const endpoint of endpoints) {
        if (endpoint.port !== 0 && endpoint.port === opsPort) {
          ports.push(opsPort);
          continue;
        }
        const exporterApp = createMetricsApp(metrics, endpoint.path);
        const server = createServer(getRequestListener(exporterApp.fetch));
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject).listen(endpoint.port, host, () => {
            server.off("error", reject);
            resolve();
          });
        });
        servers.push(server);
        ports.push((server.address() as AddressInfo).port);
      }
      return ports;
    },
    async close() {
      await Promise.all(
        servers.splice(0).map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      await telemetry.shutdown();
    },
  };
}
