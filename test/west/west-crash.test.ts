/**
 * West killed with SIGKILL and started again (a child process, west-child.ts): what was
 * answered is never executed again, whether its request is written again with the same
 * idempotency key or re-delivered because it was not committed yet; a call that was inside
 * the upstream at the kill is sent again once, telling the upstream it is a retry. Run on
 * the embedded broker, and the first scenario also on librdkafka's mock cluster.
 */
import { afterEach, describe, expect, it } from "vitest";
import { bin, type GatewayProcess, spawnGateway } from "../support/gateway-process.ts";
import { type MockKafka, startMockKafka } from "../support/mockkafka.ts";
import {
  connectWestClients,
  type EchoServer,
  echoText,
  endOf,
  replyTopic,
  requestTopic,
  startEchoServer,
  startWestBench,
  type WestClients,
} from "./west-harness.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

/** West in a child process against `bootstrap`; resolves once it has its assignment. */
async function spawnWest(
  bootstrap: string,
  echo: EchoServer,
  args: readonly string[] = [],
): Promise<GatewayProcess> {
  const child = spawnGateway(bin("bun"), [
    "test/west/west-child.ts",
    "--bootstrap",
    bootstrap,
    "--upstream",
    `127.0.0.1:${echo.port}`,
    ...args,
  ]);
  cleanups.push(() => child.kill());
  await child.waitForStdout(/"msg":"west ready"/, 60_000);
  return child;
}

/** Waits until the group has committed every request record of every partition. */
async function allCommitted(bench: WestClients, partitions: number): Promise<void> {
  const ends = await bench.admin.fetchTopicOffsets(requestTopic);
  for (let p = 0; p < partitions; p++) {
    const end = BigInt(ends.find((e) => e.partition === p)?.offset ?? "0");
    await expect.poll(() => bench.committed(p), { timeout: 20_000 }).toBe(end);
  }
}

const changelogTopic = "zilla-example-west_kafka_grpc_remote_server-echo-requests-changelog";

const keyed = (i: number) => ({
  id: `order-${i}-0123456789abcdef0123456789abcdef`,
  metadata: [["idempotency-key", `order-${i}`]] as [string, string][],
});

/** 20 keyed calls answered and committed, SIGKILL, restart, the same 20 written again. */
async function answeredNeverRunTwice(
  bench: WestClients,
  bootstrap: string,
  partitions: number,
): Promise<void> {
  const echo = await startEchoServer();
  cleanups.push(() => echo.close());
  const first = await spawnWest(bootstrap, echo);
  const calls = Array.from({ length: 20 }, (_, i) => ({ ...keyed(i), messages: [`once ${i}`] }));
  await Promise.all(calls.map((c) => bench.request(c)));
  const before = await Promise.all(calls.map((c) => bench.reply(c.id)));
  expect(before.map((r) => endOf(r).status)).toEqual(calls.map(() => 0));
  expect(echo.calls.get("UnaryEcho")).toBe(20);
  await allCommitted(bench, partitions);

  await first.kill(); // SIGKILL: no close, no commit, no leave
  await spawnWest(bootstrap, echo);
  await Promise.all(calls.map((c) => bench.request(c)));
  const after = await Promise.all(calls.map((c) => bench.reply(c.id, 2, 30_000)));
  // 0 new executions, 20 replies written again from the changelog.
  expect(echo.calls.get("UnaryEcho")).toBe(20);
  for (const [i, records] of after.entries()) {
    const messages = records.filter((r) => r.value !== null).map((r) => echoText(r.value));
    expect(messages).toEqual([`once ${i}`, `once ${i}`]);
    expect(records.filter((r) => r.value === null).map((r) => endOf([r]).status)).toEqual([0, 0]);
  }
}

type TestCall = { id: string; metadata: [string, string][]; messages: string[] };

/**
 * One partition: a call the upstream holds 6 s (offsets 0-1, holding the commit point), ten
 * calls answered behind it (so not committed), then SIGKILL and a restart; west started with
 * `westArgs` both times. `call(i, message)` makes the calls (the held one is number 100).
 */
async function answeredBehindAHeldCall(
  call: (i: number, message: string) => TestCall,
  westArgs: readonly string[] = [],
) {
  const bench = await startWestBench(1);
  cleanups.push(() => bench.close());
  const echo = await startEchoServer();
  cleanups.push(() => echo.close());
  const first = await spawnWest(bench.broker.bootstrap, echo, westArgs);
  const held = call(100, "delay:6000:held");
  await bench.request(held);
  await expect.poll(() => echo.requests.length, { timeout: 20_000 }).toBe(1);
  const fast = Array.from({ length: 10 }, (_, i) => call(i, `fast ${i}`));
  for (const c of fast) await bench.request(c);
  await Promise.all(fast.map((c) => bench.reply(c.id)));
  expect(await bench.committed()).toBeLessThanOrEqual(0n);
  await first.kill(); // SIGKILL: no close, no commit, no leave
  await spawnWest(bench.broker.bootstrap, echo, westArgs);
  return { bench, echo, held, fast };
}

describe("west killed and restarted", () => {
  it("answered.calls.written.again.are.replayed.not.executed", { timeout: 120_000 }, async () => {
    const bench = await startWestBench(3);
    cleanups.push(() => bench.close());
    await answeredNeverRunTwice(bench, bench.broker.bootstrap, 3);
    // The changelog the restart restored from: co-partitioned with the request topic.
    const [metadata] = (
      await bench.admin.fetchTopicMetadata({
        topics: [changelogTopic],
      })
    ).topics;
    expect(metadata?.partitions).toHaveLength(3);
  });

  it("uncommitted.calls.are.not.executed.again.and.the.call.in.the.upstream.runs.once.more", {
    timeout: 120_000,
  }, async () => {
    const { bench, echo, held, fast } = await answeredBehindAHeldCall((i, message) => ({
      ...keyed(i),
      messages: [message],
    }));
    const heldReply = await bench.reply(held.id, 1, 40_000);
    expect(endOf(heldReply).status).toBe(0);
    expect(heldReply.filter((r) => r.value !== null).map((r) => echoText(r.value))).toEqual([
      "delay:6000:held",
    ]);
    // Re-delivered, answered from the changelog (the reply may have been lost), not run.
    const again = await Promise.all(fast.map((c) => bench.reply(c.id, 2, 30_000)));
    expect(again.map((r) => endOf(r).status)).toEqual(fast.map(() => 0));
    for (const [i] of fast.entries()) {
      expect(echo.requests.filter((r) => r.messages[0] === `fast ${i}`)).toHaveLength(1);
    }
    // The held call: exactly once more, saying so, with the same idempotency key.
    const runs = echo.requests.filter((r) => r.messages[0] === "delay:6000:held");
    expect(runs).toHaveLength(2);
    expect(runs[0]?.headers.get("grpc-previous-rpc-attempts")).toBeNull();
    expect(runs[1]?.headers.get("grpc-previous-rpc-attempts")).toBe("1");
    expect(runs.map((r) => r.headers.get("idempotency-key"))).toEqual(["order-100", "order-100"]);
    await allCommitted(bench, 1);
    expect(echo.requests).toHaveLength(12);
  });

  it("more.answered.calls.behind.a.held.commit.point.than.west.keeps.in.memory.are.not.executed.again", {
    timeout: 120_000,
  }, async () => {
    // West keeps 5 ended calls in memory here (100,000 by default); a restore must bring back
    // every call that will be delivered again, whatever that bound. Un-keyed calls: only the
    // changelog's entries recognise them.
    const { bench, echo, held, fast } = await answeredBehindAHeldCall(
      (i, message) => ({
        id: `call-${i}-0123456789abcdef0123456789abcdef`,
        metadata: [] as [string, string][],
        messages: [message],
      }),
      ["--store-max-entries", "5"],
    );
    await bench.reply(held.id, 1, 40_000);
    // Re-delivered, all ten answered again from the changelog, none run again.
    const again = await Promise.all(fast.map((c) => bench.reply(c.id, 2, 30_000)));
    expect(again.map((r) => endOf(r).status)).toEqual(fast.map(() => 0));
    await allCommitted(bench, 1);
    const runs = fast.map((_, i) => echo.requests.filter((r) => r.messages[0] === `fast ${i}`));
    expect(runs.map((r) => r.length)).toEqual(fast.map(() => 1));
  });
});

describe("west killed and restarted on librdkafka's mock cluster", () => {
  it("answered.calls.written.again.are.replayed.not.executed", { timeout: 180_000 }, async () => {
    // The changelog is made here, not by west: the mock answers metadata for any topic by
    // creating it, leaders where it likes.
    const mock: MockKafka = await startMockKafka({
      brokers: 3,
      topics: { [requestTopic]: 3, [replyTopic]: 3, [changelogTopic]: 3 },
    });
    cleanups.push(() => mock.close());
    // One partition per broker (the mock garbles ListOffsets answers naming two of one broker).
    for (const topic of [requestTopic, replyTopic, changelogTopic]) {
      for (let p = 0; p < 3; p++) await mock.leader(topic, p, p + 1);
    }
    const bench = await connectWestClients(mock.brokers);
    cleanups.push(() => bench.close());
    await answeredNeverRunTwice(bench, mock.bootstrap, 3);
  });
});
