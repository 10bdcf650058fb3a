import { describe, expect, it, vi } from "vitest";
import type { CommitOffset } from "../kafka/group-consumer.ts";
import { silentLogger } from "../ops/logger.ts";
import { createOffsetCommits } from "./offset-commits.ts";
import type { SpanRef } from "./west-call.ts";

const p0 = { topic: "t", partition: 0 };
const p1 = { topic: "t", partition: 1 };

function setup(fail = false) {
  const commits: CommitOffset[][] = [];
  const released: string[] = [];
  const offsets = createOffsetCommits({
    commit: async (o) => {
      if (fail) throw new Error("refused");
      commits.push(o);
    },
    commitDelayMs: 10,
    logger: silentLogger,
    onCommitted: (tp, offset) => released.push(`${tp.partition}@${offset}`),
  });
  return { commits, released, offsets };
}

describe("createOffsetCommits", () => {
  it("commits behind done calls only, never past one in flight", async () => {
    const { commits, offsets } = setup();
    offsets.assign([p0]);
    const tracker = offsets.trackerFor(p0);
    const slow: SpanRef[] = [];
    const fast: SpanRef[] = [];
    offsets.attach(slow, tracker, 0n);
    offsets.attach(fast, tracker, 1n);
    offsets.attach(slow, tracker, 2n);
    offsets.complete(fast);
    await offsets.commitNow();
    // The slow call holds the commit point at its first record.
    expect(commits).toEqual([[{ ...p0, offset: 0n }]]);
    offsets.complete(slow);
    offsets.skip(tracker, 3n);
    await offsets.commitNow();
    expect(commits.at(-1)).toEqual([{ ...p0, offset: 4n }]);
  });

  it("gathers calls finished close together into one commit, then reports it", async () => {
    const { commits, released, offsets } = setup();
    offsets.assign([p0, p1]);
    offsets.skip(offsets.trackerFor(p0), 0n);
    offsets.skip(offsets.trackerFor(p1), 5n);
    offsets.skip(offsets.trackerFor(p0), 1n);
    await vi.waitFor(() => expect(commits).toHaveLength(1));
    expect(commits[0]).toEqual([
      { ...p0, offset: 2n },
      { ...p1, offset: 6n },
    ]);
    expect(released).toEqual(["0@2", "1@6"]);
    // Nothing new: no commit.
    await offsets.commitNow();
    expect(commits).toHaveLength(1);
  });

  it("forgets revoked partitions and commits nothing after a crash", async () => {
    const { commits, offsets } = setup();
    offsets.assign([p0, p1]);
    const t0 = offsets.trackerFor(p0);
    offsets.assign([p1]);
    expect(offsets.isCurrent("t/0", t0)).toBe(false);
    offsets.skip(offsets.trackerFor(p1), 0n);
    offsets.stop();
    await offsets.commitNow();
    expect(commits).toEqual([]);
  });

  it("tries a refused commit again with the next one", async () => {
    const { commits, offsets } = setup(true);
    offsets.assign([p0]);
    offsets.skip(offsets.trackerFor(p0), 0n);
    await offsets.commitNow();
    expect(commits).toEqual([]);
  });
});
