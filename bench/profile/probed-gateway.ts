/**
 * The bench gateway with stage probes: installs `globalThis.__gwProbe` (the hooks that
 * stage-probes.patch adds to src/kafka/ and src/west/ call it with a stage name and a correlation id)
 * before the gateway's modules load, then runs the example topology like
 * bench/processes/gateway.ts. `dump` returns the first time each call reached each stage
 * (performance.now() ms) and the Kafka requests made, by client id and API, and clears them.
 */
const stamps = new Map<string, Record<string, number>>();
let recording = false;
(globalThis as { __gwProbe?: (stage: string, id: string) => void }).__gwProbe = (stage, id) => {
  if (!recording) return;
  let entry = stamps.get(id);
  if (!entry) {
    entry = {};
    stamps.set(id, entry);
  }
  entry[stage] ??= performance.now();
};

// Kafka requests by client and API, counted by wrapping the gateway's own client's
// WireConnection (every request and every acks=0 send goes through one of the two).
const requests = new Map<string, number>();
{
  const { WireConnection } = await import("../../src/kafka/client/wire-connection.ts");
  const { ApiKey } = await import("../../src/kafka/protocol/api-keys.ts");
  const names = new Map<number, string>(Object.entries(ApiKey).map(([n, k]) => [k as number, n]));
  type Counted = { clientId: string | null };
  const count = (self: Counted, apiKey: number) => {
    if (!recording) return;
    const key = `${self.clientId ?? "-"} ${names.get(apiKey) ?? apiKey}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  };
  const proto = WireConnection.prototype as unknown as Record<
    "request" | "send",
    (this: Counted, apiKey: number, ...rest: unknown[]) => unknown
  >;
  for (const method of ["request", "send"] as const) {
    const original = proto[method];
    proto[method] = function (this: Counted, apiKey: number, ...rest: unknown[]) {
      count(this, apiKey);
      return original.call(this, apiKey, ...rest);
    };
  }
}

const { defaultGrpcKafkaOptions, defaultKafkaGrpcOptions } = await import(
  "../../src/config/types.ts"
);
const { startGateway } = await import("../../src/gateway.ts");
const { createLogger } = await import("../../src/ops/logger.ts");
const { emitReady, numberArg, parseArgs, serveCommands, stringArg } = await import(
  "../lib/child-channel.ts"
);
const { processStats } = await import("../lib/process-stats.ts");

const args = parseArgs();
const requestTopic = stringArg(args, "request-topic", "echo-requests");
const replyTopic = stringArg(args, "reply-topic", "echo-responses");
const logger = createLogger("warn", (line) => process.stderr.write(`${line}\n`));
const gateway = await startGateway(
  {
    name: "bench",
    kafka: { servers: [stringArg(args, "bootstrap")] },
    north: [
      {
        binding: "north_grpc_kafka_mapping",
        listeners: [{ host: "127.0.0.1", port: 0 }],
        services: ["grpc.examples.echo.Echo"],
        routes: [
          {
            when: [{ method: "grpc.examples.echo.Echo/*" }],
            with: {
              capability: "produce",
              topic: requestTopic,
              acks: "leader_only",
              replyTo: replyTopic,
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
              { topic: requestTopic, replyTo: replyTopic, method: "grpc.examples.echo.Echo/*" },
            ],
            with: { scheme: "http", authority: `127.0.0.1:${numberArg(args, "echo-port")}` },
          },
        ],
        options: { ...defaultKafkaGrpcOptions(), acks: "leader_only" },
      },
    ],
  },
  { logger },
);

serveCommands(
  (command) => {
    switch (command.cmd) {
      case "record":
        stamps.clear();
        requests.clear();
        recording = true;
        return null;
      case "dump": {
        recording = false;
        const out = { stamps: Object.fromEntries(stamps), requests: Object.fromEntries(requests) };
        stamps.clear();
        return out;
      }
      case "stats":
        return processStats();
      default:
        throw new Error(`unknown command ${command.cmd}`);
    }
  },
  () => gateway.close(1_000),
);
emitReady({ port: gateway.north[0]?.ports[0] ?? 0 });
