/**
 * Only the upstream's own answers are kept for duplicates (issue 12.4): when west answered
 * without calling the upstream (deadline passed before the call, a method name it refuses),
 * or the call ended without the upstream's answer (its caller cancelled it), a retry with the
 * same idempotency key runs; the upstream's own status, even an error, is replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ATTEMPT } from "../../src/kafka/header-names.ts";
import {
  type EchoServer,
  endOf,
  requestRecords,
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
/** Each end record's status and the attempt it is tagged with ("-" when untagged). */
const taggedEnds = (records: Awaited<ReturnType<WestBench["reply"]>>) =>
  records
    .filter((r) => r.value === null)
    .map((r) => `${endOf([r]).status}:${r.headers.find(([n]) => n === ATTEMPT)?.[1] ?? "-"}`);

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

/**
 * Attempts of one keyed call share its correlation id; north tags each caller's records with
 * its own attempt (`zilla:attempt`), and west tags the answers it gives one attempt with it,
 * so another attempt's waiter ignores them, and a cancel ends only what its caller waits for
 * (docs/contract.md: difference 9).
 */
describe("attempts of one keyed call are told apart", () => {
  // A broker of its own: the first test writes its records before west starts.
  let tagged: WestBench;
  beforeAll(async () => {
    tagged = await startWestBench(1);
  });
  afterAll(async () => {
    await tagged?.close();
  });

  it("an.expired.attempt.and.its.late.cancel.leave.the.retry.alone", {
    timeout: 60_000,
  }, async () => {
    // West stalled: the first attempt expired, its caller retried at once, and the first
    // caller's cancel landed after the retry's records.
    const call = { ...keyed("tagged-stall"), messages: ["tagged stall"] };
    await tagged.request({ ...call, attemptId: "a1", deadlineMs: Date.now() - 1_000 });
    await tagged.request({ ...call, attemptId: "a2", deadlineMs: Date.now() + 20_000 });
    await tagged.request({ id: call.id, attemptId: "a1", messages: [] });
    await tagged.startWest(`127.0.0.1:${echo.port}`);
    // The expired attempt's answer names it; the retry's is the upstream's (untagged).
    expect(taggedEnds(await tagged.reply(call.id, 2))).toEqual(["4:a1", "0:-"]);
    expect(runsOf("tagged stall")).toBe(1);
  });

  it("one.callers.cancel.leaves.a.joined.duplicate.running", async () => {
    const call = { ...keyed("tagged-join"), messages: ["delay:1500:tagged join"] };
    await tagged.request({ ...call, attemptId: "j1" });
    await expect.poll(() => runsOf("delay:1500:tagged join"), { timeout: 10_000 }).toBe(1);
    await tagged.request({ ...call, attemptId: "j2" });
    await tagged.request({ id: call.id, attemptId: "j1", messages: [] });
    // j2 still waits: the call is not cancelled, and its answer is the upstream's.
    expect(taggedEnds(await tagged.reply(call.id, 1))).toEqual(["0:-"]);
    expect(runsOf("delay:1500:tagged join")).toBe(1);
  });

  it("a.retry.read.while.its.first.attempt.is.cancelled.runs.after.it", async () => {
    const call = keyed("tagged-cancel");
    await tagged.request({ ...call, attemptId: "c1", messages: ["delay:20000:tagged cancel"] });
    await expect.poll(() => runsOf("delay:20000:tagged cancel"), { timeout: 10_000 }).toBe(1);
    // The cancel and the caller's retry in one batch: west reads the retry while the first
    // attempt is still being cancelled.
    await tagged.produce([
      ...requestRecords({ id: call.id, attemptId: "c1", messages: [] }),
      ...requestRecords({ ...call, attemptId: "c2", messages: ["delay:1:tagged retry"] }),
    ]);
    // The cancelled attempt's end names it; the retry ran as attempt 2 and was answered.
    expect(taggedEnds(await tagged.reply(call.id, 2))).toEqual(["1:c1", "0:-"]);
    const retry = echo.requests.find((r) => r.messages[0] === "delay:1:tagged retry");
    expect(retry?.headers.get("grpc-previous-rpc-attempts")).toBe("1");
  });
});
