/**
 * Only the upstream's own answers are kept for duplicates (issue 12.4): when west answered
 * without calling the upstream (deadline passed before the call, a method name it refuses),
 * or the call ended without the upstream's answer (its caller cancelled it), a retry with the
 * same idempotency key runs; the upstream's own status, even an error, is replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EchoServer,
  endOf,
  startEchoServer,
  startWestBench,
  type WestBench,
} from "./west-harness.ts";

let bench: WestBench;
let echo: EchoServer;

beforeAll(async () => {
  bench = await startWestBench(1);
  echo = await startEchoServer();
});

afterAll(async () => {
  await bench?.close();
  await echo?.close();
});

const keyed = (name: string) => ({
  id: `${name}-0123456789abcdef0123456789abcdef`,
  metadata: [["idempotency-key", name]] as [string, string][],
});
const runsOf = (text: string) => echo.requests.filter((r) => r.messages[0] === text).length;
const statuses = (records: Awaited<ReturnType<WestBench["reply"]>>) =>
  records.filter((r) => r.value === null).map((r) => endOf([r]).status);

describe("west retries with the same key", () => {
  it("retry.after.an.expired.deadline.runs", { timeout: 60_000 }, async () => {
    // West stalled past the caller's deadline (not started yet): the request and its retry
    // both wait in the partition, the first with a deadline that has passed.
    const call = { ...keyed("stalled"), messages: ["after stall"] };
    await bench.request({ ...call, deadlineMs: Date.now() - 1_000 });
    await bench.request({ ...call, deadlineMs: Date.now() + 20_000 });
    await bench.startWest(`127.0.0.1:${echo.port}`);
    expect(statuses(await bench.reply(call.id, 2))).toEqual([4, 0]);
    expect(runsOf("after stall")).toBe(1);

    // And a retry written after west answered DEADLINE_EXCEEDED runs too.
    const late = { ...keyed("late"), messages: ["late retry"] };
    await bench.request({ ...late, deadlineMs: Date.now() - 1_000 });
    expect(statuses(await bench.reply(late.id, 1))).toEqual([4]);
    await bench.request({ ...late, deadlineMs: Date.now() + 20_000 });
    expect(statuses(await bench.reply(late.id, 2))).toEqual([4, 0]);
    expect(runsOf("late retry")).toBe(1);
  });

  it("retry.after.a.refused.method.name.runs", async () => {
    const call = keyed("bad-name");
    await bench.request({ ...call, method: "UnaryEcho/../x", messages: ["named"] });
    expect(statuses(await bench.reply(call.id, 1))).toEqual([12]);
    await bench.request({ ...call, messages: ["named"] });
    expect(statuses(await bench.reply(call.id, 2))).toEqual([12, 0]);
    expect(runsOf("named")).toBe(1);
  });

  it("retry.after.a.cancel.runs.again.as.the.next.attempt", async () => {
    const call = { ...keyed("cancelled"), messages: ["delay:20000:cancelled"] };
    await bench.request(call);
    await expect.poll(() => runsOf("delay:20000:cancelled"), { timeout: 10_000 }).toBe(1);
    // The caller's cancel: one more end record for the call.
    await bench.request({ id: call.id, messages: [] });
    expect(statuses(await bench.reply(call.id, 1))).toEqual([1]);
    // The upstream may have done the work: the retry says it is one.
    await bench.request({ ...call, messages: ["delay:1:cancelled retry"] });
    expect(statuses(await bench.reply(call.id, 2))).toEqual([1, 0]);
    const retry = echo.requests.find((r) => r.messages[0] === "delay:1:cancelled retry");
    expect(retry?.headers.get("grpc-previous-rpc-attempts")).toBe("1");
    expect(retry?.headers.get("idempotency-key")).toBe("cancelled");
  });

  it("the.upstreams.own.error.is.replayed.not.run.again", async () => {
    const call = { ...keyed("failed"), messages: ["error:9:not now"] };
    await bench.request(call);
    expect(endOf(await bench.reply(call.id, 1))).toEqual({ status: 9, message: "not now" });
    await bench.request(call);
    expect(statuses(await bench.reply(call.id, 2))).toEqual([9, 9]);
    expect(runsOf("error:9:not now")).toBe(1);
  });
});
