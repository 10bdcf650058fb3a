/**
 * A dead upstream is visible while it is dead: west logs "cannot reach upstream" at warn
 * within a second of the first call's first attempt (then no more than once per interval),
 * /metrics shows `gateway_upstream_up` 0 and counts every failed attempt, and the call's
 * status message says how many attempts were made over how long and what the last one met.
 * When the upstream comes up, the next call is answered, "upstream reachable again" is
 * logged and the gauge goes back to 1.
 */
import { createServer } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createLogger } from "../../src/ops/logger.ts";
import { type EchoServer, startEchoServer } from "../../src/upstream/echo-server.ts";
import { eventually, type OpsStack, sample, startOpsStack } from "./ops-fixture.ts";

let stack: OpsStack;
let deadPort: number;
let lateEcho: EchoServer | undefined;
const lines: Array<Record<string, unknown>> = [];
/** How long west tries a call that carries no deadline (north waits longer: 30 s). */
const westTimeoutMs = 3_000;

beforeAll(async () => {
  deadPort = await closedPort();
  stack = await startOpsStack({
    logger: createLogger("info", (line) => lines.push(JSON.parse(line))),
    configure(config) {
      const west = config.west[0];
      const route = west?.routes[0];
      if (!west || !route) throw new Error("the example has a west route");
      route.with = { ...route.with, authority: `127.0.0.1:${deadPort}` };
      west.options.defaultTimeoutMs = westTimeoutMs;
    },
  });
});

afterAll(async () => {
  await stack?.close();
  await lateEcho?.close();
});

const upstream = () => `127.0.0.1:${deadPort}`;
const linesAbout = (msg: string) => lines.filter((l) => l.msg === msg && l.upstream === upstream());

async function metric(name: string): Promise<number | undefined> {
  const res = await fetch(`${stack.opsUrl}/metrics`);
  return sample(await res.text(), name, { upstream: upstream() });
}

test("upstream.unreachable.is.logged.counted.and.explained", { timeout: 60_000 }, async () => {
  const startedAt = Date.now();
  const call = stack.client.unaryEcho({ message: "nobody home" }).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );

  // Logged at warn while the call is still retrying, within a second of its start.
  await eventually(() => linesAbout("cannot reach upstream").length > 0, 10_000);
  const [warned] = linesAbout("cannot reach upstream");
  expect(warned?.level).toBe("warn");
  expect(String(warned?.reason)).toContain("ECONNREFUSED");
  expect(Date.parse(String(warned?.time)) - startedAt).toBeLessThan(1_000);
  expect(await metric("gateway_upstream_up")).toBe(0);
  expect(await metric("gateway_upstream_connect_failures_total")).toBeGreaterThanOrEqual(1);

  const error = await call;
  expect(error?.code).toBe(Code.Unavailable);
  const match = new RegExp(
    `^upstream 127\\.0\\.0\\.1:${deadPort} unreachable after (\\d+) attempts over ([\\d.]+) s: connect ECONNREFUSED 127\\.0\\.0\\.1:${deadPort}$`,
  ).exec(error?.rawMessage ?? "");
  expect(match, error?.rawMessage).not.toBeNull();
  const attempts = Number(match?.[1]);
  expect(attempts).toBeGreaterThan(1);
  expect(Number(match?.[2])).toBeLessThanOrEqual(westTimeoutMs / 1000);
  // Every failed attempt is counted; the log said it once (the interval is 10 s).
  expect(await metric("gateway_upstream_connect_failures_total")).toBe(attempts);
  expect(linesAbout("cannot reach upstream")).toHaveLength(1);
  expect(linesAbout("still cannot reach upstream")).toHaveLength(0);

  // The upstream comes up: the next call is answered and the recovery is logged.
  lateEcho = await startEchoServer({ host: "127.0.0.1", port: deadPort });
  expect((await stack.client.unaryEcho({ message: "now" })).message).toBe("now");
  const [recovered] = linesAbout("upstream reachable again");
  expect(recovered?.level).toBe("info");
  expect(recovered?.failures).toBe(attempts);
  expect(await metric("gateway_upstream_up")).toBe(1);
});

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
