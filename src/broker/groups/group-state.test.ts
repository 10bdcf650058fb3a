import { describe, expect, it } from "vitest";
import type { GroupProtocol, JoinGroupInput } from "./group-api.ts";
import {
  createGroup,
  currentJoinResult,
  EMPTY,
  type Group,
  isFenced,
  type Member,
  removeMember,
  selectProtocol,
  supportsProtocols,
} from "./group-state.ts";

const text = (s: string) => new TextEncoder().encode(s);
const protocols = (...names: string[]): GroupProtocol[] =>
  names.map((name) => ({ name, metadata: text(`${name}-meta`) }));

function member(memberId: string, names: string[], groupInstanceId: string | null = null): Member {
  return {
    memberId,
    groupInstanceId,
    clientId: memberId,
    clientHost: "",
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 20_000,
    protocols: protocols(...names),
    assignment: EMPTY,
    joinWaiter: null,
    syncWaiter: null,
    lastHeartbeatMs: 0,
    expiryTimer: undefined,
  };
}

/** A group of `members` in join order, the first one leading. */
function groupOf(...members: Member[]): Group {
  const group = createGroup("g");
  for (const m of members) {
    group.members.set(m.memberId, m);
    if (m.groupInstanceId !== null) group.staticMembers.set(m.groupInstanceId, m.memberId);
  }
  group.leaderId = members[0]?.memberId ?? null;
  group.protocolType = "consumer";
  return group;
}

function joining(names: string[], protocolType = "consumer"): JoinGroupInput {
  return {
    groupId: "g",
    memberId: "",
    groupInstanceId: null,
    clientId: "c",
    clientHost: "",
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 20_000,
    protocolType,
    protocols: protocols(...names),
    requireKnownMemberId: false,
  };
}

describe("group rules", () => {
  it("picks the protocol most members prefer, ties going to the leader's order", () => {
    const majority = groupOf(
      member("a", ["range", "roundrobin"]),
      member("b", ["roundrobin", "range"]),
      member("c", ["roundrobin", "range"]),
    );
    expect(selectProtocol(majority)).toBe("roundrobin");
    const tie = groupOf(member("a", ["range", "roundrobin"]), member("b", ["roundrobin", "range"]));
    expect(selectProtocol(tie)).toBe("range");
  });

  it("lets a member in only with the group's protocol type and a protocol all others share", () => {
    const group = groupOf(member("a", ["range"]), member("b", ["range", "sticky"]));
    expect(supportsProtocols(group, joining(["sticky", "range"]), null)).toBe(true);
    expect(supportsProtocols(group, joining(["sticky"]), null)).toBe(false);
    expect(supportsProtocols(group, joining(["range"], "connect"), null)).toBe(false);
    // A lone member's own old protocols do not count: it may switch.
    expect(supportsProtocols(groupOf(member("a", ["range"])), joining(["sticky"]), "a")).toBe(true);
  });

  it("fences a static instance id claimed by another member id", () => {
    const group = groupOf(member("a", ["range"], "instance-1"));
    expect(isFenced(group, "a", "instance-1")).toBe(false);
    expect(isFenced(group, "someone-else", "instance-1")).toBe(true);
    expect(isFenced(group, "someone-else", null)).toBe(false);
  });

  it("hands leadership to the next member when the leader is removed, and frees its instance id", () => {
    const group = groupOf(member("a", ["range"], "instance-1"), member("b", ["range"]));
    removeMember(group, group.members.get("a") as Member);
    expect(group.leaderId).toBe("b");
    expect(group.staticMembers.has("instance-1")).toBe(false);
    expect([...group.members.keys()]).toEqual(["b"]);
  });

  it("shows the leader every member's metadata for the chosen protocol, a follower none", () => {
    const group = groupOf(member("a", ["range", "sticky"]), member("b", ["sticky", "range"]));
    group.generationId = 3;
    group.protocolName = "sticky";
    const leader = currentJoinResult(group, group.members.get("a") as Member);
    expect(leader.generationId).toBe(3);
    expect(leader.members.map((m) => [m.memberId, new TextDecoder().decode(m.metadata)])).toEqual([
      ["a", "sticky-meta"],
      ["b", "sticky-meta"],
    ]);
    expect(currentJoinResult(group, group.members.get("b") as Member).members).toEqual([]);
  });
});
