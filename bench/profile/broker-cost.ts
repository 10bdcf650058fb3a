/**
 * What one call costs the shared broker, gateway against kafkajs floor, measured in the same
 * broker and the same memory phase: windows alternate between the two sides on one broker
 * (gateway split as the bench deploys it; the floor's requester and responder), and each
 * window reads the broker's user and system CPU, minor page faults (/proc/<pid>/stat) and the
 * bytes its sockets received and sent (`ss -ti` on its port), per call.
 *
 *   npx bun bench/profile/broker-cost.ts [--concurrency 64] [--payload-bytes 10240]
 *     [--duration-ms 5000] [--rounds 3] [--retention-ms N]
 */
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";
import { echoRequestBytes, echoTextOfSize, grpcFrame } from "../lib/echo-payload.ts";
import { runH2load, unaryEchoRun } from "../lib/h2load.ts";
import { processUsage } from "../lib/machine-cpu.ts";
import { type LoadRunResult, scenarios } from "../lib/scenarios.ts";

const args = parseArgs();
const concurrency = Number(args.get("concurrency") ?? 64);
const payloadBytes = Number(args.get("payload-bytes") ?? 10240);
const durationMs = Number(args.get("duration-ms") ?? 5000);
const rounds = Number(args.get("rounds") ?? 3);
const verbose = { verbose: args.has("verbose") };
const scenario = scenarios.find((s) => s.kind === "unary" && s.payloadBytes === payloadBytes);
if (!scenario)
  throw new Error(`no unary scenario of ${payloadBytes} bytes in bench/lib/scenarios.ts`);

interface BrokerReading {
  userS: number;
  systemS: number;
  minorFaults: number;
  received: number;
  sent: number;
}

/** Bytes received and sent so far over the established connections to `port`. */
function socketBytes(port: number): Promise<{ received: number; sent: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      "ss",
      ["-tinH", "state", "established", `( sport = :${port} )`],
      { maxBuffer: 16 << 20 },
      (err, stdout) => {
        if (err) return reject(err);
        let received = 0;
        let sent = 0;
        for (const m of stdout.matchAll(/bytes_(sent|received):(\d+)/g)) {
          if (m[1] === "sent") sent += Number(m[2]);
          else received += Number(m[2]);
        }
        resolve({ received, sent });
      },
    );
  });
}

async function read(pid: number, port: number): Promise<BrokerReading> {
  const usage = processUsage(pid);
  if (!usage) throw new Error(`cannot read /proc/${pid}/stat (the broker's)`);
  return { ...usage, ...(await socketBytes(port)) };
}

const topics = ["echo-requests", "echo-responses", "bench-floor-requests", "bench-floor-responses"];
const broker = spawnChild<{ bootstrap: string }>(
  "broker",
  "processes/broker.ts",
  [
    "--partitions",
    "3",
    "--topics",
    topics.join(","),
    ...(args.has("retention-ms") ? ["--retention-ms", args.get("retention-ms") as string] : []),
  ],
  verbose,
);
const echo = spawnChild<{ port: number }>("echo", "processes/echo.ts", [], verbose);
const { bootstrap } = await broker.ready;
const brokerPort = Number(bootstrap.slice(bootstrap.lastIndexOf(":") + 1));
const { port: echoPort } = await echo.ready;
const gateway = spawnChild<{ port: number }>(
  "gateway",
  "processes/gateway.ts",
  [
    ...["--bootstrap", bootstrap, "--echo-port", String(echoPort)],
    ...["--request-topic", "echo-requests", "--reply-topic", "echo-responses"],
    ...["--deployment", "split"],
  ],
  verbose,
);
const responder = spawnChild<object>(
  "floor-responder",
  "processes/floor-responder.ts",
  [...["--bootstrap", bootstrap, "--request-topic", "bench-floor-requests", "--partitions", "3"]],
  verbose,
);
const [{ port }] = await Promise.all([gateway.ready, responder.ready]);
const requester = spawnChild<object>(
  "floor-requester",
  "processes/floor-requester.ts",
  [
    ...["--bootstrap", bootstrap, "--request-topic", "bench-floor-requests"],
    ...["--reply-topic", "bench-floor-responses"],
  ],
  verbose,
);
await requester.ready;
const bodyFile = `${os.tmpdir()}/broker-cost-body-${process.pid}`;
await writeFile(bodyFile, grpcFrame(echoRequestBytes(echoTextOfSize(payloadBytes))));

async function gatewayWindow(ms: number): Promise<number> {
  const run = unaryEchoRun(port, bodyFile, concurrency, payloadBytes);
  return (await runH2load({ ...run, durationMs: ms })).calls;
}

async function floorWindow(ms: number): Promise<number> {
  const result = await requester.request<LoadRunResult>(
    "run",
    { request: { scenario, concurrency, connections: 1, warmupMs: 0, durationMs: ms } },
    ms + 30_000,
  );
  if (result.failed > 0)
    console.log(`  floor: ${result.failed} failed ${JSON.stringify(result.errors)}`);
  return result.calls;
}

function line(side: string, calls: number, a: BrokerReading, b: BrokerReading): string {
  const per = (x: number) => x / calls;
  return [
    side.padEnd(8),
    `${((calls / durationMs) * 1000).toFixed(0).padStart(6)} calls/s`,
    `broker user ${(per(b.userS - a.userS) * 1e6).toFixed(0).padStart(4)} µs`,
    `system ${(per(b.systemS - a.systemS) * 1e6).toFixed(0).padStart(4)} µs`,
    `faults ${per(b.minorFaults - a.minorFaults)
      .toFixed(1)
      .padStart(5)}`,
    `in ${(per(b.received - a.received) / 1024).toFixed(1).padStart(6)} KiB`,
    `out ${(per(b.sent - a.sent) / 1024).toFixed(1).padStart(6)} KiB per call`,
  ].join("  ");
}

try {
  await gatewayWindow(1000);
  await floorWindow(1000);
  for (let r = 0; r < rounds; r++) {
    for (const [side, window] of [
      ["gateway", gatewayWindow],
      ["floor", floorWindow],
    ] as const) {
      const a = await read(broker.pid, brokerPort);
      const calls = await window(durationMs);
      const b = await read(broker.pid, brokerPort);
      console.log(line(side, calls, a, b));
    }
  }
} finally {
  await rm(bodyFile, { force: true });
  await Promise.all([gateway.stop(2_000), echo.stop(2_000), requester.stop(2_000)]);
  await responder.stop(2_000);
  await broker.stop(2_000);
}
