import { describe, expect, test } from "vitest";
import { parseReplyPartitions, replyGroupId, workerShare } from "./reply-partitions.ts";

describe("reply partitions option", () => {
  test("parses all, group and lists of partitions and ranges", () => {
    expect(parseReplyPartitions("all")).toBe("all");
    expect(parseReplyPartitions(" group ")).toBe("group");
    expect(parseReplyPartitions("0-3,8")).toEqual([0, 1, 2, 3, 8]);
    expect(parseReplyPartitions("5, 1-2 ,5")).toEqual([1, 2, 5]);
  });

  test("refuses anything else with a clear error", () => {
    expect(parseReplyPartitions("some")).toMatch(/expected all, group or partition numbers/);
    expect(parseReplyPartitions("3-1")).toMatch(/"3-1" is not a range/);
    expect(parseReplyPartitions("-1")).toMatch(/expected/);
    expect(parseReplyPartitions("")).toMatch(/expected/);
  });

  test("a list is shared out among workers; all and group are not", () => {
    expect(workerShare([0, 1, 2, 3, 4], 2, 0)).toEqual([0, 2, 4]);
    expect(workerShare([0, 1, 2, 3, 4], 2, 1)).toEqual([1, 3]);
    expect(workerShare("group", 4, 3)).toBe("group");
    expect(replyGroupId("example", "north_grpc_kafka_mapping")).toBe(
      "zilla:example-north_grpc_kafka_mapping-replies",
    );
  });
});
