import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import {
  createGroupManager,
  type GroupManager,
  type GroupManagerOptions,
  type JoinGroupInput,
  type JoinGroupResult,
} from "./group-manager.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

const SESSION_MS = 10_000;
const REBALANCE_MS = 20_000;

function joinInput(over: Partial<JoinGroupInput> = {}): JoinGroupInput {
  return {
    groupId: "g",
    memberId: "",
    groupInstanceId: null,
    clientId: "client",
    clientHost: "",
    sessionTimeoutMs: SESSION_MS,
    rebalanceTimeoutMs: REBALANCE_MS,
    protocolType: "consumer",
    protocols: [{ name: "range", metadata: text("meta") }],
    requireKnownMemberId: false,
    ...over,
  };
}

/** Follows a promise's fate without awaiting it, to assert that an answer is still pending. */
function track<T>(p: Promise<T>): { done: boolean; value: T | undefined } {
  const t: { done: boolean; value: T | undefined } = { done: false, value: undefined };
  void p.then((v) => {
    t.done = true;
    t.value = v;
  });
  return t;
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const partitionsOf: Record<string, number> = { t: 4, other: 1 };
const baseOpts: GroupManagerOptions = {
  partitionExists: (topic, partition) => partition >= 0 && partition < (partitionsOf[topic] ?? 0),
};

let managers: GroupManager[] = [];
function manager(over: Partial<GroupManagerOptions> = {}): GroupManager {
  const m = createGroupManager({ ...baseOpts, ...over });
  managers.push(m);
  return m;
}

afterEach(() => {
  for (const m of managers) m.close();
  managers = [];
  vi.useRealTimers();
});

/** One member joined and synced: a Stable group of one. */
async function stableSingle(m: GroupManager, assignment = "a-all"): Promise<JoinGroupResult> {
  const joined = await m.joinGroup(joinInput());
  const synced = await m.syncGroup({
    groupId: "g",
    generationId: joined.generationId,
    memberId: joined.memberId,
    groupInstanceId: null,
    assignments: [{ memberId: joined.memberId, assignment: text(assignment) }],
  });
  expect(synced.errorCode).toBe(ErrorCode.NONE);
  return joined;
}

/** Two members A (leader) and B in a Stable group of generation 2. */
async function stablePair(m: GroupManager): Promise<{ a: JoinGroupResult; b: JoinGroupResult }> {
  const a1 = await stableSingle(m);
  const bJoin = m.joinGroup(joinInput({ clientId: "b" }));
  expect(
    m.heartbeat({ groupId: "g", generationId: 1, memberId: a1.memberId, groupInstanceId: null }),
  ).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  const [a, b] = await Promise.all([m.joinGroup(joinInput({ memberId: a1.memberId })), bJoin]);
  const assignments = [
    { memberId: a.memberId, assignment: text("a-part") },
    { memberId: b.memberId, assignment: text("b-part") },
  ];
  const [sa, sb] = await Promise.all([
    m.syncGroup({
      groupId: "g",
      generationId: a.generationId,
      memberId: a.memberId,
      groupInstanceId: null,
      assignments,
    }),
    m.syncGroup({
      groupId: "g",
      generationId: b.generationId,
      memberId: b.memberId,
      groupInstanceId: null,
      assignments: [],
    }),
  ]);
  expect(decode(sa.assignment)).toBe("a-part");
  expect(decode(sb.assignment)).toBe("b-part");
  return { a, b };
}

describe("join, sync and heartbeat", () => {
  it("makes the first member leader of generation 1 and hands it its assignment", async () => {
    const m = manager();
    const joined = await m.joinGroup(joinInput());
    expect(joined.errorCode).toBe(ErrorCode.NONE);
    expect(joined.generationId).toBe(1);
    expect(joined.leaderId).toBe(joined.memberId);
    expect(joined.memberId).toMatch(/^client-/);
    expect(joined.protocolName).toBe("range");
    expect(joined.members.map((x) => [x.memberId, decode(x.metadata)])).toEqual([
      [joined.memberId, "meta"],
    ]);
    expect(m.describeGroup("g").state).toBe("CompletingRebalance");

    const synced = await m.syncGroup({
      groupId: "g",
      generationId: 1,
      memberId: joined.memberId,
      groupInstanceId: null,
      assignments: [{ memberId: joined.memberId, assignment: text("all") }],
    });
    expect(decode(synced.assignment)).toBe("all");
    expect(
      m.heartbeat({
        groupId: "g",
        generationId: 1,
        memberId: joined.memberId,
        groupInstanceId: null,
      }),
    ).toBe(ErrorCode.NONE);
    const described = m.describeGroup("g");
    expect(described.state).toBe("Stable");
    expect(described.protocolType).toBe("consumer");
    expect(described.protocolName).toBe("range");
    expect(described.members.map((x) => decode(x.assignment))).toEqual(["all"]);
    expect(described.members.map((x) => decode(x.metadata))).toEqual(["meta"]);
  });

  it("answers MEMBER_ID_REQUIRED with an id to rejoin with, when asked to (v4+)", async () => {
    const m = manager();
    const first = await m.joinGroup(joinInput({ requireKnownMemberId: true }));
    expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    expect(first.memberId).toMatch(/^client-/);
    expect(m.describeGroup("g").members).toEqual([]);

    const second = await m.joinGroup(
      joinInput({ requireKnownMemberId: true, memberId: first.memberId }),
    );
    expect(second.errorCode).toBe(ErrorCode.NONE);
    expect(second.memberId).toBe(first.memberId);
    expect(second.generationId).toBe(1);
  });

  it("rejects unknown members, unknown groups and illegal generations", async () => {
    const m = manager();
    expect((await m.joinGroup(joinInput({ memberId: "nobody" }))).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    const a = await stableSingle(m);
    expect((await m.joinGroup(joinInput({ memberId: "nobody" }))).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    expect(
      m.heartbeat({ groupId: "g", generationId: 1, memberId: "nobody", groupInstanceId: null }),
    ).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(
      m.heartbeat({
        groupId: "nope",
        generationId: 1,
        memberId: a.memberId,
        groupInstanceId: null,
      }),
    ).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(
      m.heartbeat({ groupId: "g", generationId: 7, memberId: a.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.ILLEGAL_GENERATION);
    const sync = await m.syncGroup({
      groupId: "g",
      generationId: 0,
      memberId: a.memberId,
      groupInstanceId: null,
      assignments: [],
    });
    expect(sync.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await m.joinGroup(joinInput({ groupId: "" }))).errorCode).toBe(
      ErrorCode.INVALID_GROUP_ID,
    );
    expect(
      m.heartbeat({ groupId: "", generationId: 1, memberId: a.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.INVALID_GROUP_ID);
  });

  it("refuses a member whose protocols the group cannot share", async () => {
    const m = manager();
    await stableSingle(m);
    const otherType = await m.joinGroup(joinInput({ protocolType: "connect" }));
    expect(otherType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const noCommon = await m.joinGroup(
      joinInput({ protocols: [{ name: "sticky", metadata: text("") }] }),
    );
    expect(noCommon.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const none = await m.joinGroup(joinInput({ groupId: "h", protocols: [] }));
    expect(none.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    expect(m.describeGroup("g").state).toBe("Stable");
  });

  it("picks the protocol most members prefer, ties going to the leader's order", async () => {
    const m = manager();
    const x = { name: "x", metadata: text("x") };
    const y = { name: "y", metadata: text("y") };
    const z = { name: "z", metadata: text("z") };
    // Joined together (one JoinGroup round): leader prefers x, the others y; z is not shared.
    const joins = [m.joinGroup(joinInput({ groupId: "votes", protocols: [x, y, z] }))];
    const leader = await joins[0];
    expect(leader?.protocolName).toBe("x");
    const b = m.joinGroup(joinInput({ groupId: "votes", protocols: [y, x] }));
    const c = m.joinGroup(joinInput({ groupId: "votes", protocols: [y, x] }));
    const rejoin = await m.joinGroup(
      joinInput({ groupId: "votes", memberId: leader?.memberId ?? "", protocols: [x, y, z] }),
    );
    await Promise.all([b, c]);
    expect(rejoin.protocolName).toBe("y");
    expect(rejoin.members.map((mm) => decode(mm.metadata))).toEqual(["y", "y", "y"]);

    const t1 = await m.joinGroup(joinInput({ groupId: "tie", protocols: [x, y] }));
    const t2 = m.joinGroup(joinInput({ groupId: "tie", protocols: [y, x] }));
    const t1again = await m.joinGroup(
      joinInput({ groupId: "tie", memberId: t1.memberId, protocols: [x, y] }),
    );
    expect((await t2).protocolName).toBe("x");
    expect(t1again.protocolName).toBe("x");
  });
});

describe("rebalance", () => {
  it("on a new member: the old one learns it by heartbeat, rejoins, and both get the new generation", async () => {
    const m = manager();
    const a1 = await stableSingle(m);
    const bJoin = track(m.joinGroup(joinInput({ clientId: "b" })));
    await flush();
    expect(bJoin.done).toBe(false);
    expect(m.describeGroup("g").state).toBe("PreparingRebalance");
    // Commits stay allowed until the member rejoins (so it can commit what it processed).
    const commit = m.commitOffsets({
      groupId: "g",
      generationId: 1,
      memberId: a1.memberId,
      groupInstanceId: null,
      topics: [
        { name: "t", partitions: [{ partition: 0, offset: 5, leaderEpoch: -1, metadata: null }] },
      ],
    });
    expect(commit[0]?.partitions[0]?.errorCode).toBe(ErrorCode.NONE);
    expect(
      m.heartbeat({ groupId: "g", generationId: 1, memberId: a1.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const a2 = await m.joinGroup(joinInput({ memberId: a1.memberId }));
    await flush();
    expect(bJoin.done).toBe(true);
    const b = bJoin.value as JoinGroupResult;
    expect(a2.generationId).toBe(2);
    expect(b.generationId).toBe(2);
    expect(a2.leaderId).toBe(a1.memberId);
    expect(b.leaderId).toBe(a1.memberId);
    expect(a2.members.map((x) => x.memberId)).toEqual([a1.memberId, b.memberId]);
    expect(b.members).toEqual([]);

    // Followers' SyncGroup waits for the leader's; commits wait too (REBALANCE_IN_PROGRESS).
    const bSync = track(
      m.syncGroup({
        groupId: "g",
        generationId: 2,
        memberId: b.memberId,
        groupInstanceId: null,
        assignments: [],
      }),
    );
    await flush();
    expect(bSync.done).toBe(false);
    expect(
      m.heartbeat({ groupId: "g", generationId: 2, memberId: b.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.NONE);
    const blocked = m.commitOffsets({
      groupId: "g",
      generationId: 2,
      memberId: b.memberId,
      groupInstanceId: null,
      topics: [
        { name: "t", partitions: [{ partition: 1, offset: 1, leaderEpoch: -1, metadata: null }] },
      ],
    });
    expect(blocked[0]?.partitions[0]?.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const aSync = await m.syncGroup({
      groupId: "g",
      generationId: 2,
      memberId: a2.memberId,
      groupInstanceId: null,
      assignments: [
        { memberId: a2.memberId, assignment: text("0,1") },
        { memberId: b.memberId, assignment: text("2,3") },
      ],
    });
    await flush();
    expect(decode(aSync.assignment)).toBe("0,1");
    expect(bSync.done).toBe(true);
    expect(decode(bSync.value?.assignment ?? new Uint8Array())).toBe("2,3");
    expect(m.describeGroup("g").state).toBe("Stable");
    // The commit made during the rebalance survived it.
    expect(
      m.fetchOffsets("g", [{ name: "t", partitions: [0] }]).topics[0]?.partitions[0]?.offset,
    ).toBe(5);
  });

  it("on a leave: the survivor rejoins alone under a new generation and becomes leader", async () => {
    const m = manager();
    const { a, b } = await stablePair(m);
    const left = m.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    expect(left.members[0]?.errorCode).toBe(ErrorCode.NONE);
    expect(
      m.heartbeat({ groupId: "g", generationId: 2, memberId: b.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const b3 = await m.joinGroup(joinInput({ memberId: b.memberId }));
    expect(b3.generationId).toBe(3);
    expect(b3.leaderId).toBe(b.memberId);
    expect(b3.members.map((x) => x.memberId)).toEqual([b.memberId]);
    expect(
      m.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]).members[0]?.errorCode,
    ).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it("answers a waiting follower's SyncGroup with REBALANCE_IN_PROGRESS when a member joins meanwhile", async () => {
    const m = manager();
    const a1 = await stableSingle(m);
    const bJoin = m.joinGroup(joinInput({ clientId: "b" }));
    await m.joinGroup(joinInput({ memberId: a1.memberId }));
    const b = await bJoin;
    const bSync = m.syncGroup({
      groupId: "g",
      generationId: 2,
      memberId: b.memberId,
      groupInstanceId: null,
      assignments: [],
    });
    const cJoin = track(m.joinGroup(joinInput({ clientId: "c" })));
    expect((await bSync).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(m.describeGroup("g").state).toBe("PreparingRebalance");
    await flush();
    expect(cJoin.done).toBe(false);
  });

  it("the group goes Empty with a new generation when its last member leaves", async () => {
    const m = manager();
    const a = await stableSingle(m);
    m.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    const d = m.describeGroup("g");
    expect(d.state).toBe("Empty");
    expect(d.members).toEqual([]);
    const again = await m.joinGroup(joinInput());
    expect(again.generationId).toBe(3);
  });
});

describe("timeouts", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  it("removes members that do not rejoin within the rebalance timeout", async () => {
    const m = manager();
    const { a, b } = await stablePair(m);
    const cJoin = track(m.joinGroup(joinInput({ clientId: "c" })));
    const aJoin = track(m.joinGroup(joinInput({ memberId: a.memberId })));
    // B keeps heartbeating but never rejoins.
    for (let t = 0; t < REBALANCE_MS - 3000; t += 3000) {
      await vi.advanceTimersByTimeAsync(3000);
      expect(
        m.heartbeat({ groupId: "g", generationId: 2, memberId: b.memberId, groupInstanceId: null }),
      ).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    }
    expect(aJoin.done).toBe(false);
    await vi.advanceTimersByTimeAsync(3000);
    expect(aJoin.done && cJoin.done).toBe(true);
    expect(aJoin.value?.generationId).toBe(3);
    expect(aJoin.value?.members.map((x) => x.memberId)).toEqual([
      a.memberId,
      cJoin.value?.memberId,
    ]);
    expect(
      m.heartbeat({ groupId: "g", generationId: 2, memberId: b.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it("expires a member without heartbeats for the session timeout and rebalances the rest", async () => {
    const m = manager();
    const { a, b } = await stablePair(m);
    for (let t = 0; t < SESSION_MS + 2000; t += 2000) {
      await vi.advanceTimersByTimeAsync(2000);
      m.heartbeat({ groupId: "g", generationId: 2, memberId: a.memberId, groupInstanceId: null });
    }
    const d = m.describeGroup("g");
    expect(d.members.map((x) => x.memberId)).toEqual([a.memberId]);
    expect(d.state).toBe("PreparingRebalance");
    expect(
      m.heartbeat({ groupId: "g", generationId: 2, memberId: b.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const a3 = await m.joinGroup(joinInput({ memberId: a.memberId }));
    expect(a3.generationId).toBe(3);
  });

  it("keeps a member alive while it waits in JoinGroup", async () => {
    const m = manager();
    const a = await stableSingle(m);
    const bJoin = track(m.joinGroup(joinInput({ clientId: "b", sessionTimeoutMs: 1000 })));
    await vi.advanceTimersByTimeAsync(5000);
    expect(bJoin.done).toBe(false);
    await m.joinGroup(joinInput({ memberId: a.memberId }));
    await flush();
    expect(bJoin.value?.errorCode).toBe(ErrorCode.NONE);
    expect(bJoin.value?.generationId).toBe(2);
  });

  it("forgets an id handed out with MEMBER_ID_REQUIRED that never comes back", async () => {
    const m = manager();
    const a = await stableSingle(m);
    const pending = await m.joinGroup(joinInput({ requireKnownMemberId: true }));
    expect(pending.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    await vi.advanceTimersByTimeAsync(SESSION_MS + 1);
    m.heartbeat({ groupId: "g", generationId: 1, memberId: a.memberId, groupInstanceId: null });
    const late = await m.joinGroup(
      joinInput({ memberId: pending.memberId, requireKnownMemberId: true }),
    );
    expect(late.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it("waits the initial rebalance delay for more members before completing the first join", async () => {
    const m = manager({ initialRebalanceDelayMs: 3000 });
    const a = track(m.joinGroup(joinInput({ clientId: "a" })));
    await vi.advanceTimersByTimeAsync(1000);
    const b = track(m.joinGroup(joinInput({ clientId: "b" })));
    await vi.advanceTimersByTimeAsync(1500);
    expect(a.done || b.done).toBe(false);
    // B arrived during the first window, so one more window runs.
    await vi.advanceTimersByTimeAsync(600);
    expect(a.done || b.done).toBe(false);
    await vi.advanceTimersByTimeAsync(3000);
    expect(a.done && b.done).toBe(true);
    expect(a.value?.generationId).toBe(1);
    expect(b.value?.generationId).toBe(1);
    expect(a.value?.members).toHaveLength(2);
  });

  it("with no initial delay completes the first join at once", async () => {
    const m = manager({ initialRebalanceDelayMs: 0 });
    const a = track(m.joinGroup(joinInput()));
    await flush();
    expect(a.value?.generationId).toBe(1);
  });
});

describe("offsets", () => {
  const commit = (
    m: GroupManager,
    over: { groupId?: string; generationId?: number; memberId?: string },
    offset: number,
    partition = 0,
    topic = "t",
  ) =>
    m.commitOffsets({
      groupId: over.groupId ?? "g",
      generationId: over.generationId ?? -1,
      memberId: over.memberId ?? "",
      groupInstanceId: null,
      topics: [
        { name: topic, partitions: [{ partition, offset, leaderEpoch: 3, metadata: "md" }] },
      ],
    })[0]?.partitions[0]?.errorCode;

  it("stores simple commits (generation -1) for a group without members and lists that group", () => {
    const m = manager();
    expect(commit(m, {}, 42)).toBe(ErrorCode.NONE);
    expect(commit(m, {}, 7, 2)).toBe(ErrorCode.NONE);
    const fetched = m.fetchOffsets("g", [{ name: "t", partitions: [0, 1, 2] }]);
    expect(fetched.errorCode).toBe(ErrorCode.NONE);
    expect(
      fetched.topics[0]?.partitions.map((p) => [p.partition, p.offset, p.metadata, p.leaderEpoch]),
    ).toEqual([
      [0, 42, "md", 3],
      [1, -1, "", -1],
      [2, 7, "md", 3],
    ]);
    expect(m.fetchOffsets("g", null).topics).toEqual([
      {
        name: "t",
        partitions: [
          { partition: 0, offset: 42, leaderEpoch: 3, metadata: "md", errorCode: 0 },
          { partition: 2, offset: 7, leaderEpoch: 3, metadata: "md", errorCode: 0 },
        ],
      },
    ]);
    expect(m.listGroups()).toEqual([{ groupId: "g", protocolType: "" }]);
    expect(m.describeGroup("g").state).toBe("Empty");
    // Like Kafka, "" is a valid group id for commits outside group management.
    expect(commit(m, { groupId: "" }, 1)).toBe(ErrorCode.NONE);
  });

  it("answers -1 for groups and partitions without commits", () => {
    const m = manager();
    const fetched = m.fetchOffsets("none", [{ name: "t", partitions: [0] }]);
    expect(fetched.topics[0]?.partitions[0]).toMatchObject({ offset: -1, errorCode: 0 });
    expect(m.fetchOffsets("none", null).topics).toEqual([]);
  });

  it("rejects unknown topics and partitions but stores the rest of the request", () => {
    const m = manager();
    const res = m.commitOffsets({
      groupId: "g",
      generationId: -1,
      memberId: "",
      groupInstanceId: null,
      topics: [
        {
          name: "t",
          partitions: [
            { partition: 9, offset: 1, leaderEpoch: -1, metadata: null },
            { partition: 1, offset: 1, leaderEpoch: -1, metadata: null },
          ],
        },
        {
          name: "missing",
          partitions: [{ partition: 0, offset: 1, leaderEpoch: -1, metadata: null }],
        },
      ],
    });
    expect(res.map((t) => t.partitions.map((p) => p.errorCode))).toEqual([
      [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NONE],
      [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
    ]);
    expect(
      m.fetchOffsets("g", [{ name: "t", partitions: [1] }]).topics[0]?.partitions[0]?.offset,
    ).toBe(1);
  });

  it("checks generation and member when the group has members", async () => {
    const m = manager();
    const a = await stableSingle(m);
    expect(commit(m, {}, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(commit(m, { generationId: 1, memberId: "nobody" }, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(commit(m, { generationId: 9, memberId: a.memberId }, 1)).toBe(
      ErrorCode.ILLEGAL_GENERATION,
    );
    expect(commit(m, { groupId: "fresh", generationId: 1, memberId: "x" }, 1)).toBe(
      ErrorCode.ILLEGAL_GENERATION,
    );
    expect(commit(m, { generationId: 1, memberId: a.memberId }, 11)).toBe(ErrorCode.NONE);
    expect(
      m.fetchOffsets("g", [{ name: "t", partitions: [0] }]).topics[0]?.partitions[0]?.offset,
    ).toBe(11);
  });
});

describe("describe, list, delete", () => {
  it("describes unknown groups as Dead and lists every known group", async () => {
    const m = manager();
    await stableSingle(m);
    expect(m.describeGroup("nope")).toMatchObject({ errorCode: 0, state: "Dead", members: [] });
    expect(m.listGroups()).toEqual([{ groupId: "g", protocolType: "consumer" }]);
  });

  it("deletes only empty groups, and their offsets with them", async () => {
    const m = manager();
    const a = await stableSingle(m);
    m.commitOffsets({
      groupId: "g",
      generationId: 1,
      memberId: a.memberId,
      groupInstanceId: null,
      topics: [
        { name: "t", partitions: [{ partition: 0, offset: 3, leaderEpoch: -1, metadata: null }] },
      ],
    });
    expect(m.deleteGroup("g")).toBe(ErrorCode.NON_EMPTY_GROUP);
    expect(m.deleteGroup("nope")).toBe(ErrorCode.GROUP_ID_NOT_FOUND);
    m.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    expect(
      m.fetchOffsets("g", [{ name: "t", partitions: [0] }]).topics[0]?.partitions[0]?.offset,
    ).toBe(3);
    expect(m.deleteGroup("g")).toBe(ErrorCode.NONE);
    expect(m.listGroups()).toEqual([]);
    expect(
      m.fetchOffsets("g", [{ name: "t", partitions: [0] }]).topics[0]?.partitions[0]?.offset,
    ).toBe(-1);
    expect(m.deleteGroup("g")).toBe(ErrorCode.GROUP_ID_NOT_FOUND);
  });

  it("shows metadata and assignments only once the group is Stable", async () => {
    const m = manager();
    const a = await stableSingle(m);
    m.joinGroup(joinInput({ clientId: "b" }));
    const d = m.describeGroup("g");
    expect(d.state).toBe("PreparingRebalance");
    expect(d.protocolName).toBe("");
    expect(
      d.members.map((x) => [x.memberId, x.metadata.length, x.assignment.length]),
    ).toContainEqual([a.memberId, 0, 0]);
  });
});

describe("static members and close", () => {
  it("gives a returning static member a new id and fences the old one", async () => {
    const m = manager();
    const first = await m.joinGroup(joinInput({ groupInstanceId: "inst-1" }));
    await m.syncGroup({
      groupId: "g",
      generationId: 1,
      memberId: first.memberId,
      groupInstanceId: "inst-1",
      assignments: [{ memberId: first.memberId, assignment: text("x") }],
    });
    const again = await m.joinGroup(joinInput({ groupInstanceId: "inst-1" }));
    expect(again.errorCode).toBe(ErrorCode.NONE);
    expect(again.memberId).not.toBe(first.memberId);
    expect(
      m.heartbeat({
        groupId: "g",
        generationId: again.generationId,
        memberId: first.memberId,
        groupInstanceId: "inst-1",
      }),
    ).toBe(82);
    const left = m.leaveGroup("g", [{ memberId: "", groupInstanceId: "inst-1" }]);
    expect(left.members[0]?.errorCode).toBe(ErrorCode.NONE);
    expect(m.describeGroup("g").state).toBe("Empty");
  });

  it("answers every waiting JoinGroup and SyncGroup with COORDINATOR_NOT_AVAILABLE on close", async () => {
    const m = manager();
    const a1 = await stableSingle(m, "x");
    const bJoin = m.joinGroup(joinInput({ clientId: "b" }));
    const other = await m.joinGroup(joinInput({ groupId: "h" }));
    const otherFollower = m.joinGroup(joinInput({ groupId: "h", clientId: "f" }));
    const otherRejoin = await m.joinGroup(joinInput({ groupId: "h", memberId: other.memberId }));
    const follower = await otherFollower;
    const followerSync = m.syncGroup({
      groupId: "h",
      generationId: otherRejoin.generationId,
      memberId: follower.memberId,
      groupInstanceId: null,
      assignments: [],
    });
    m.close();
    expect((await bJoin).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect((await followerSync).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect(
      m.heartbeat({ groupId: "g", generationId: 1, memberId: a1.memberId, groupInstanceId: null }),
    ).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect((await m.joinGroup(joinInput())).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });
});
