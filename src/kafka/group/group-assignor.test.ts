import { describe, expect, it } from "vitest";
import { planAssignment, rangeOwner } from "./group-assignor.ts";

describe("rangeOwner", () => {
  it("splits partitions like Kafka's range assignor", () => {
    const owners = (count: number, members: number) =>
      Array.from({ length: count }, (_, p) => rangeOwner(p, count, members));
    expect(owners(7, 3)).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect(owners(6, 3)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(owners(2, 3)).toEqual([0, 1]);
    expect(owners(3, 1)).toEqual([0, 0, 0]);
  });
});

describe("planAssignment", () => {
  const members = [
    { memberId: "b", topics: ["t", "u"] },
    { memberId: "a", topics: ["t"] },
  ];
  const counts = new Map([
    ["t", 3],
    ["u", 2],
  ]);

  it("gives every partition to exactly one subscribed member, by range", () => {
    const plan = planAssignment("range", members, counts);
    expect(plan.get("a")).toEqual([
      { topic: "t", partition: 0 },
      { topic: "t", partition: 1 },
    ]);
    expect(plan.get("b")).toEqual([
      { topic: "t", partition: 2 },
      { topic: "u", partition: 0 },
      { topic: "u", partition: 1 },
    ]);
  });

  it("deals partitions in turn under round robin, and leaves topics without a count alone", () => {
    const plan = planAssignment("roundrobin", members, new Map([["t", 3]]));
    expect(plan.get("a")).toEqual([
      { topic: "t", partition: 0 },
      { topic: "t", partition: 2 },
    ]);
    expect(plan.get("b")).toEqual([{ topic: "t", partition: 1 }]);
  });

  it("leaves a member without partitions when members outnumber them", () => {
    const many = ["m1", "m2", "m3"].map((memberId) => ({ memberId, topics: ["t"] }));
    const plan = planAssignment("range", many, new Map([["t", 2]]));
    expect([...plan.values()].map((parts) => parts.length)).toEqual([1, 1, 0]);
  });
});
