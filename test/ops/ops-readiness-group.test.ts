/**
 * Readiness follows west's group membership: /readyz answers 503, naming the group and the
 * last error, while the member has been rebalancing longer than `group.unready-after-ms`,
 * and 200 again once it is a settled member; a member left without partitions because the
 * group has more members than partitions is ready.
 */
import { afterEach, expect, test } from "vitest";
import { type GroupConsumer, startGroupConsumer } from "../../src/kafka/group-consumer.ts";
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { ApiKey } from "../../src/kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../src/kafka/protocol/errors.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { kafkajsFor } from "../support/kafkajs.ts";
import { requestTopic } from "../support/stack.ts";
import { type OpsStack, startOpsStack } from "./ops-fixture.ts";

let stack: OpsStack | undefined;
let other: GroupConsumer | undefined;

afterEach(async () => {
  await other?.close();
  other = undefined;
  await stack?.close();
  stack = undefined;
});

async function readyz(s: OpsStack): Promise<{ status: number; body: string }> {
  const response = await fetch(`${s.opsUrl}/readyz`);
  return { status: response.status, body: await response.text() };
}

test("readyz.503.while.rebalancing.past.the.limit", { timeout: 60_000 }, async () => {
  stack = await startOpsStack({
    configure(config) {
      config.kafka.group = {
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 10_000,
        unreadyAfterMs: 500,
      };
    },
  });
  const s = stack;
  await expect.poll(() => readyz(s), { timeout: 20_000 }).toEqual({ status: 200, body: "ready\n" });
  // The group rebalances, and the coordinator keeps refusing the rejoin.
  s.broker.faults.failNext(
    ApiKey.JoinGroup,
    Number.POSITIVE_INFINITY,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
  );
  s.broker.faults.failNext(ApiKey.Heartbeat, 1, ErrorCode.REBALANCE_IN_PROGRESS);
  try {
    await expect.poll(() => readyz(s), { timeout: 20_000 }).toMatchObject({ status: 503 });
    const { body } = await readyz(s);
    expect(body).toMatch(
      /west \S+ consumer group: consumer group zilla:\S+ (joining|rebalancing) for \d+\.\d s/,
    );
    expect(body).toMatch(/COORDINATOR_LOAD_IN_PROGRESS \(14\)/);
  } finally {
    s.broker.faults.failNext(ApiKey.JoinGroup, 0, 0);
  }
  await expect.poll(() => readyz(s), { timeout: 20_000 }).toEqual({ status: 200, body: "ready\n" });
});

test("readyz.200.without.partitions.when.members.outnumber.them", { timeout: 60_000 }, async () => {
  stack = await startOpsStack({
    partitions: 1,
    configure(config) {
      config.kafka.group = {
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 10_000,
        unreadyAfterMs: 300,
      };
    },
  });
  const s = stack;
  await expect.poll(() => readyz(s), { timeout: 20_000 }).toEqual({ status: 200, body: "ready\n" });
  const groupId = s.gateway.west[0]?.groupId as string;
  // Member ids start with the client id: "aaa" sorts before the gateway's "zilla-", so the
  // range assignor gives the one partition to this member and none to the gateway's.
  other = await startGroupConsumer(createKafka({ servers: [s.broker.bootstrap] }, "aaa-first"), {
    groupId,
    topics: [requestTopic],
    logger: silentLogger,
    heartbeatIntervalMs: 200,
    onRecord: () => false,
    onRebalancing: async () => {},
    onAssignment: () => {},
  });
  await expect
    .poll(() => other?.assignment(), { timeout: 20_000 })
    .toEqual([{ topic: requestTopic, partition: 0 }]);
  // Both members are settled (the group is stable), the gateway's with no partition.
  const admin = kafkajsFor(createKafka({ servers: [s.broker.bootstrap] })).admin();
  await admin.connect();
  try {
    await expect
      .poll(
        async () => {
          const [group] = (await admin.describeGroups([groupId])).groups;
          return { state: group?.state, members: group?.members.length };
        },
        { timeout: 20_000 },
      )
      .toEqual({ state: "Stable", members: 2 });
  } finally {
    await admin.disconnect();
  }
  expect(await readyz(s)).toEqual({ status: 200, body: "ready\n" });
});
