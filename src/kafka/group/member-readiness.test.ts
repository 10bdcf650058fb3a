import { describe, expect, it } from "vitest";
import { type MemberStatus, memberUnreadyReasons } from "./member-readiness.ts";

const settled: MemberStatus = {
  groupId: "g",
  state: "stable",
  stateSince: 0,
  lastProblem: undefined,
  heartbeatAnsweredAt: 9_000,
  sessionTimeoutMs: 10_000,
  unreadyAfterMs: 5_000,
  unplaced: [],
};

describe("memberUnreadyReasons", () => {
  it("finds a settled member ready, with or without partitions", () => {
    expect(memberUnreadyReasons(settled, 10_000)).toEqual([]);
  });

  it("tolerates a rebalance up to the limit, then names it with its last problem", () => {
    const rebalancing = { ...settled, state: "revoking" as const, stateSince: 10_000 };
    expect(memberUnreadyReasons(rebalancing, 14_999)).toEqual([]);
    expect(
      memberUnreadyReasons(
        {
          ...rebalancing,
          lastProblem: new Error("join refused: COORDINATOR_LOAD_IN_PROGRESS (14)"),
        },
        15_500,
      ),
    ).toEqual([
      "consumer group g rebalancing for 5.5 s (last problem: join refused: COORDINATOR_LOAD_IN_PROGRESS (14))",
    ]);
    expect(memberUnreadyReasons({ ...rebalancing, state: "joining" }, 16_000)).toEqual([
      "consumer group g joining for 6.0 s",
    ]);
  });

  it("reports heartbeats unanswered past the session timeout and partitions without a position", () => {
    expect(
      memberUnreadyReasons(
        {
          ...settled,
          heartbeatAnsweredAt: 0,
          unplaced: [{ topic: "t", partition: 2, error: new Error("answer names t--1") }],
        },
        10_001,
      ),
    ).toEqual([
      "consumer group g: no heartbeat answered for 10.0 s (the coordinator may have dropped this member)",
      "t-2 is assigned but has no position: answer names t--1",
    ]);
  });
});
