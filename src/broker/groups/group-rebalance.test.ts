import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { JoinGroupInput } from "./group-api.ts";
import { createRebalancer } from "./group-rebalance.ts";
import { createGroup } from "./group-state.ts";

const REBALANCE_MS = 20_000;

function joining(clientId: string, sessionTimeoutMs = 10_000): JoinGroupInput {
  return {
    groupId: "g",
    memberId: "",
    groupInstanceId: null,
    clientId,
    clientHost: "",
    sessionTimeoutMs,
    rebalanceTimeoutMs: REBALANCE_MS,
    protocolType: "consumer",
    protocols: [{ name: "range", metadata: new Uint8Array(0) }],
    requireKnownMemberId: false,
  };
}

/** Follows a promise's fate without awaiting it. */
function track<T>(p: Promise<T>): { done: boolean } {
  const t = { done: false };
  void p.then(() => {
    t.done = true;
  });
  return t;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("rebalancing", () => {
  it("keeps an Empty group's first join open while members keep arriving, one delay at a time", async () => {
    const rebalancer = createRebalancer({ now: Date.now, initialRebalanceDelayMs: 3_000 });
    const group = createGroup("g");
    const a = track(rebalancer.addMemberAndRebalance(group, "a", joining("a")));
    await vi.advanceTimersByTimeAsync(2_000);
    const b = track(rebalancer.addMemberAndRebalance(group, "b", joining("b")));
    // The first delay ends with a member new since it began: one more delay.
    await vi.advanceTimersByTimeAsync(1_500);
    expect([a.done, b.done]).toEqual([false, false]);
    await vi.advanceTimersByTimeAsync(3_000);
    expect([a.done, b.done]).toEqual([true, true]);
    expect(group.state).toBe("CompletingRebalance");
    expect(group.generationId).toBe(1);
    expect(group.leaderId).toBe("a");
  });

  it("drops a member that does not rejoin within the rebalance timeout", async () => {
    const rebalancer = createRebalancer({ now: Date.now, initialRebalanceDelayMs: 0 });
    const group = createGroup("g");
    // Sessions outlast the rebalance timeout: only the rebalance decides.
    await rebalancer.addMemberAndRebalance(group, "a", joining("a", 60_000));
    group.state = "Stable";
    const b = rebalancer.addMemberAndRebalance(group, "b", joining("b", 60_000));
    await vi.advanceTimersByTimeAsync(REBALANCE_MS - 1);
    expect(group.members.size).toBe(2);
    // "a" never rejoins: when the rebalance timeout ends, the join completes without it.
    await vi.advanceTimersByTimeAsync(1);
    const answer = await b;
    expect(answer.errorCode).toBe(ErrorCode.NONE);
    expect(answer.leaderId).toBe("b");
    expect([...group.members.keys()]).toEqual(["b"]);
    expect(group.generationId).toBe(2);
  });

  it("answers a member removed while it waits, and rebalances the others", async () => {
    const rebalancer = createRebalancer({ now: Date.now, initialRebalanceDelayMs: 0 });
    const group = createGroup("g");
    await rebalancer.addMemberAndRebalance(group, "a", joining("a"));
    group.state = "Stable";
    const b = rebalancer.addMemberAndRebalance(group, "b", joining("b"));
    rebalancer.removeMemberAndUpdateGroup(group, group.members.get("b") as never);
    expect((await b).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(group.state).toBe("PreparingRebalance");
  });
});
