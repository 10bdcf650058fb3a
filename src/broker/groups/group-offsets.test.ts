import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import { GroupErrorCode } from "./group-api.ts";
import { createOffsetStore } from "./group-offsets.ts";
import { createRebalancer } from "./group-rebalance.ts";
import { createGroup, type Group, type GroupRegistry } from "./group-state.ts";

function store(closed = false) {
  const groups = new Map<string, Group>();
  const registry: GroupRegistry = {
    groups,
    closed,
    now: () => 1_000,
    newGroup(groupId) {
      const group = createGroup(groupId);
      groups.set(groupId, group);
      return group;
    },
  };
  const rebalancer = createRebalancer({ now: registry.now, initialRebalanceDelayMs: 0 });
  const offsets = createOffsetStore(registry, rebalancer, (topic, p) => topic === "t" && p < 2);
  return { groups, ...offsets };
}

const commit = (offset: number, metadata: string | null = null, partition = 0) => ({
  groupId: "g",
  generationId: -1,
  memberId: "",
  groupInstanceId: null,
  topics: [{ name: "t", partitions: [{ partition, offset, leaderEpoch: 5, metadata }] }],
});

describe("committed offsets", () => {
  it("keeps a commit outside group management and reads it back", () => {
    const s = store();
    expect(s.commitOffsets(commit(42, "m"))[0]?.partitions[0]?.errorCode).toBe(ErrorCode.NONE);
    expect(s.groups.get("g")?.state).toBe("Empty");
    const fetched = s.fetchOffsets("g", [{ name: "t", partitions: [0, 1] }]);
    expect(fetched.topics[0]?.partitions).toEqual([
      { partition: 0, offset: 42, leaderEpoch: 5, metadata: "m", errorCode: ErrorCode.NONE },
      { partition: 1, offset: -1, leaderEpoch: -1, metadata: "", errorCode: ErrorCode.NONE },
    ]);
  });

  it("refuses metadata over 4 KiB and partitions that do not exist, per partition", () => {
    const s = store();
    const [big] = s.commitOffsets(commit(1, "x".repeat(4097)));
    expect(big?.partitions[0]?.errorCode).toBe(GroupErrorCode.OFFSET_METADATA_TOO_LARGE);
    const [missing] = s.commitOffsets(commit(1, null, 7));
    expect(missing?.partitions[0]?.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(s.fetchOffsets("g", null).topics).toEqual([]);
  });

  it("answers COORDINATOR_NOT_AVAILABLE once closed", () => {
    const s = store(true);
    expect(s.commitOffsets(commit(1))[0]?.partitions[0]?.errorCode).toBe(
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
    );
    expect(s.fetchOffsets("g", null).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });
});
