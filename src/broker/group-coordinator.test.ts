/**
 * The coordinator's handlers, driven through every advertised version with request bytes
 * made by kafkajs's own protocol encoders and answers read by its decoders (versions
 * kafkajs lacks, which librdkafka uses, are built by hand with the project's Writer).
 */
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../kafka/protocol/errors.ts";
import { Reader, Writer } from "../kafka/protocol/wire.ts";
import type { ApiHandler, RequestContext } from "./api.ts";
import { createGroupCoordinator, type GroupCoordinator } from "./group-coordinator.ts";

const require = createRequire(import.meta.url);

type KafkajsRequest = { encode(): Promise<{ buffer: Buffer }> };
// biome-ignore lint/suspicious/noExplicitAny: kafkajs's protocol modules are untyped JavaScript.
type Decoded = any;

let coordinators: GroupCoordinator[] = [];
afterEach(() => {
  for (const c of coordinators) c.close();
  coordinators = [];
});

function coordinator(): GroupCoordinator {
  const c = createGroupCoordinator({
    partitionExists: (topic, partition) => topic === "t" && partition >= 0 && partition < 4,
    topicPartitions: (topic) => (topic === "t" ? 4 : undefined),
  });
  coordinators.push(c);
  return c;
}

function handlerOf(c: GroupCoordinator, apiKey: number): ApiHandler {
  const h = c.handlers.find((x) => x.apiKey === apiKey);
  if (!h) throw new Error(`no handler for ${apiKey}`);
  return h;
}

function context(apiKey: number, apiVersion: number, injectedError?: number): RequestContext {
  return {
    apiKey,
    apiVersion,
    correlationId: 1,
    clientId: "unit",
    flexible: false,
    connectionId: 1,
    ...(injectedError !== undefined ? { injectedError } : {}),
    broker: { nodeId: 7, host: "127.0.0.1", port: 9092, clusterId: "c" },
  };
}

async function answer(
  c: GroupCoordinator,
  apiKey: number,
  version: number,
  body: Uint8Array,
  injectedError?: number,
): Promise<Buffer> {
  const respond = await handlerOf(c, apiKey).handle(
    new Reader(body),
    context(apiKey, version, injectedError),
  );
  if (respond === null) throw new Error("the coordinator always answers");
  const w = new Writer();
  respond(w);
  return Buffer.from(w.bytesView());
}

/** Encodes with kafkajs's request module for `api/vN`, answers, decodes with its response module. */
async function viaKafkajs(
  c: GroupCoordinator,
  apiKey: number,
  api: string,
  version: number,
  args: unknown,
  injectedError?: number,
): Promise<Decoded> {
  const request: KafkajsRequest = require(
    `kafkajs/src/protocol/requests/${api}/v${version}/request`,
  )(args);
  const body = new Uint8Array((await request.encode()).buffer);
  const response = require(`kafkajs/src/protocol/requests/${api}/v${version}/response`);
  return response.decode(await answer(c, apiKey, version, body, injectedError));
}

const protocols = [{ name: "roundrobin", metadata: Buffer.from("subscription") }];

/** Joins a fresh group at JoinGroup version v (rejoining after MEMBER_ID_REQUIRED) and syncs it. */
async function joinAndSync(c: GroupCoordinator, groupId: string, v: number, syncVersion: number) {
  const join = (memberId: string) =>
    viaKafkajs(c, ApiKey.JoinGroup, "joinGroup", v, {
      groupId,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      memberId,
      protocolType: "consumer",
      groupProtocols: protocols,
    });
  let joined = await join("");
  if (v >= 4) {
    expect(joined.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    joined = await join(joined.memberId);
  }
  expect(joined.errorCode).toBe(ErrorCode.NONE);
  const synced = await viaKafkajs(c, ApiKey.SyncGroup, "syncGroup", syncVersion, {
    groupId,
    generationId: joined.generationId,
    memberId: joined.memberId,
    groupAssignment: [{ memberId: joined.memberId, memberAssignment: Buffer.from("assigned") }],
  });
  expect(synced.errorCode).toBe(ErrorCode.NONE);
  expect(Buffer.from(synced.memberAssignment).toString()).toBe("assigned");
  return joined;
}

describe("versions kafkajs speaks", () => {
  it("FindCoordinator v0-2 names this broker", async () => {
    const c = coordinator();
    for (const v of [0, 1, 2]) {
      const args = v === 0 ? { groupId: "g" } : { coordinatorKey: "g", coordinatorType: 0 };
      const res = await viaKafkajs(c, ApiKey.FindCoordinator, "findCoordinator", v, args);
      expect(res.errorCode).toBe(0);
      expect(res.coordinator).toEqual({ nodeId: 7, host: "127.0.0.1", port: 9092 });
    }
    const txn = await viaKafkajs(c, ApiKey.FindCoordinator, "findCoordinator", 1, {
      coordinatorKey: "tx",
      coordinatorType: 1,
    });
    expect(txn.errorCode).toBe(ErrorCode.INVALID_REQUEST);
  });

  it("JoinGroup v0-5 with SyncGroup v0-3 and Heartbeat v0-3", async () => {
    const c = coordinator();
    for (const v of [0, 1, 2, 3, 4, 5]) {
      const syncVersion = Math.min(v, 3);
      const joined = await joinAndSync(c, `g${v}`, v, syncVersion);
      expect(joined.generationId).toBe(1);
      expect(joined.leaderId).toBe(joined.memberId);
      expect(joined.groupProtocol).toBe("roundrobin");
      expect(joined.members).toHaveLength(1);
      expect(Buffer.from(joined.members[0].memberMetadata).toString()).toBe("subscription");
      const hb = await viaKafkajs(c, ApiKey.Heartbeat, "heartbeat", syncVersion, {
        groupId: `g${v}`,
        groupGenerationId: joined.generationId,
        memberId: joined.memberId,
      });
      expect(hb.errorCode).toBe(0);
      const bad = await viaKafkajs(c, ApiKey.Heartbeat, "heartbeat", syncVersion, {
        groupId: `g${v}`,
        groupGenerationId: joined.generationId + 1,
        memberId: joined.memberId,
      });
      expect(bad.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    }
  });

  it("OffsetCommit v0-5 and OffsetFetch v1-4 round-trip offsets and metadata", async () => {
    const c = coordinator();
    const joined = await joinAndSync(c, "offsets", 3, 2);
    for (const v of [0, 1, 2, 3, 4, 5]) {
      // v0 commits outside group management, so it goes to a group without members.
      const groupId = v === 0 ? "simple" : "offsets";
      const res = await viaKafkajs(c, ApiKey.OffsetCommit, "offsetCommit", v, {
        groupId,
        groupGenerationId: joined.generationId,
        memberId: joined.memberId,
        retentionTime: -1,
        topics: [
          {
            topic: "t",
            partitions: [
              { partition: 1, offset: String(100 + v), metadata: `m${v}` },
              { partition: 9, offset: "1" },
            ],
          },
        ],
      });
      expect(res.responses).toEqual([
        {
          topic: "t",
          partitions: [
            { partition: 1, errorCode: 0 },
            { partition: 9, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION },
          ],
        },
      ]);
    }
    for (const v of [1, 2, 3, 4]) {
      const res = await viaKafkajs(c, ApiKey.OffsetFetch, "offsetFetch", v, {
        groupId: "offsets",
        topics: [{ topic: "t", partitions: [{ partition: 1 }, { partition: 2 }] }],
      });
      expect(res.responses[0].partitions).toEqual([
        { partition: 1, offset: "105", metadata: "m5", errorCode: 0 },
        { partition: 2, offset: "-1", metadata: "", errorCode: 0 },
      ]);
      if (v >= 2) expect(res.errorCode).toBe(0);
    }
  });

  it("LeaveGroup v0-3 removes the member", async () => {
    const c = coordinator();
    for (const v of [0, 1, 2, 3]) {
      const joined = await joinAndSync(c, `leave${v}`, 3, 2);
      const args =
        v === 3
          ? { groupId: `leave${v}`, members: [{ memberId: joined.memberId }] }
          : { groupId: `leave${v}`, memberId: joined.memberId };
      const res = await viaKafkajs(c, ApiKey.LeaveGroup, "leaveGroup", v, args);
      expect(res.errorCode).toBe(0);
      if (v === 3)
        expect(res.members).toEqual([
          { memberId: joined.memberId, groupInstanceId: null, errorCode: 0 },
        ]);
      const again = await viaKafkajs(c, ApiKey.LeaveGroup, "leaveGroup", v, args);
      const code = v === 3 ? again.members[0].errorCode : again.errorCode;
      expect(code).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    }
  });

  it("DescribeGroups v0-2, ListGroups v0-2 and DeleteGroups v0-1", async () => {
    const c = coordinator();
    const joined = await joinAndSync(c, "described", 3, 2);
    for (const v of [0, 1, 2]) {
      const res = await viaKafkajs(c, ApiKey.DescribeGroups, "describeGroups", v, {
        groupIds: ["described", "unknown"],
      });
      expect(res.groups).toHaveLength(2);
      const [g, unknown] = res.groups;
      expect(g).toMatchObject({
        errorCode: 0,
        groupId: "described",
        state: "Stable",
        protocolType: "consumer",
        protocol: "roundrobin",
      });
      expect(g.members[0].memberId).toBe(joined.memberId);
      expect(g.members[0].clientId).toBe("unit");
      expect(Buffer.from(g.members[0].memberMetadata).toString()).toBe("subscription");
      expect(Buffer.from(g.members[0].memberAssignment).toString()).toBe("assigned");
      expect(unknown).toMatchObject({
        errorCode: 0,
        groupId: "unknown",
        state: "Dead",
        members: [],
      });

      const listed = await viaKafkajs(c, ApiKey.ListGroups, "listGroups", v, undefined);
      expect(listed.errorCode).toBe(0);
      expect(listed.groups).toEqual([{ groupId: "described", protocolType: "consumer" }]);
    }
    for (const v of [0, 1]) {
      const res = await viaKafkajs(c, ApiKey.DeleteGroups, "deleteGroups", v, [
        "described",
        "nope",
      ]);
      const results = res.results.map((r: Decoded) => ({
        groupId: r.groupId,
        errorCode: r.errorCode,
      }));
      expect(results).toEqual([
        { groupId: "described", errorCode: ErrorCode.NON_EMPTY_GROUP },
        { groupId: "nope", errorCode: ErrorCode.GROUP_ID_NOT_FOUND },
      ]);
    }
    await viaKafkajs(c, ApiKey.LeaveGroup, "leaveGroup", 1, {
      groupId: "described",
      memberId: joined.memberId,
    });
    const deleted = await viaKafkajs(c, ApiKey.DeleteGroups, "deleteGroups", 1, ["described"]);
    expect(deleted.results).toEqual([{ groupId: "described", errorCode: 0 }]);
    const listed = await viaKafkajs(c, ApiKey.ListGroups, "listGroups", 2, undefined);
    expect(listed.groups).toEqual([]);
  });
});

describe("versions only librdkafka speaks", () => {
  it("OffsetCommit v6-7 (leader epoch, group.instance.id) and OffsetFetch v5", async () => {
    const c = coordinator();
    for (const v of [6, 7]) {
      const w = new Writer();
      w.string(`lr${v}`).int32(-1).string("");
      if (v >= 7) w.nullableString(null);
      w.array(["t"], (t, name) => {
        t.string(name).array([2], (p, partition) => {
          p.int32(partition)
            .int64(40 + v)
            .int32(5)
            .nullableString("meta");
        });
      });
      const r = new Reader(await answer(c, ApiKey.OffsetCommit, v, w.bytesView()));
      expect(r.int32()).toBe(0); // throttle
      const topics = r.array((t) => ({
        name: t.string(),
        partitions: t.array((p) => [p.int32(), p.int16()]),
      }));
      expect(topics).toEqual([{ name: "t", partitions: [[2, 0]] }]);
      expect(r.remaining).toBe(0);

      // OffsetFetch v5 with null topics: every committed offset, with its leader epoch.
      const f = new Writer().string(`lr${v}`).int32(-1);
      const fr = new Reader(await answer(c, ApiKey.OffsetFetch, 5, f.bytesView()));
      expect(fr.int32()).toBe(0);
      const fetched = fr.array((t) => ({
        name: t.string(),
        partitions: t.array((p) => [
          p.int32(),
          p.int64n(),
          p.int32(),
          p.nullableString(),
          p.int16(),
        ]),
      }));
      expect(fetched).toEqual([{ name: "t", partitions: [[2, 40 + v, 5, "meta", 0]] }]);
      expect(fr.int16()).toBe(0);
      expect(fr.remaining).toBe(0);
    }
  });

  it("OffsetFetch v0 reports unknown partitions as such", async () => {
    const c = coordinator();
    const w = new Writer().string("g");
    w.array(["t", "nope"], (t, name) => {
      t.string(name).array([0], (p, partition) => {
        p.int32(partition);
      });
    });
    const r = new Reader(await answer(c, ApiKey.OffsetFetch, 0, w.bytesView()));
    const fetched = r.array((t) => ({
      name: t.string(),
      partitions: t.array((p) => [p.int32(), p.int64n(), p.nullableString(), p.int16()]),
    }));
    expect(fetched).toEqual([
      { name: "t", partitions: [[0, -1, "", 0]] },
      { name: "nope", partitions: [[0, -1, "", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]] },
    ]);
  });

  it("DescribeGroups v3-4 carry group.instance.id and authorized operations", async () => {
    const c = coordinator();
    const joined = await joinAndSync(c, "d4", 5, 3);
    for (const v of [3, 4]) {
      const w = new Writer();
      w.array(["d4"], (g, id) => {
        g.string(id);
      });
      w.bool(v === 4);
      const r = new Reader(await answer(c, ApiKey.DescribeGroups, v, w.bytesView()));
      expect(r.int32()).toBe(0);
      const groups = r.array((g) => ({
        errorCode: g.int16(),
        groupId: g.string(),
        state: g.string(),
        protocolType: g.string(),
        protocol: g.string(),
        members: g.array((m) => ({
          memberId: m.string(),
          groupInstanceId: v >= 4 ? m.nullableString() : undefined,
          clientId: m.string(),
          clientHost: m.string(),
          metadata: m.bytes().length,
          assignment: m.bytes().length,
        })),
        authorizedOperations: g.int32(),
      }));
      expect(r.remaining).toBe(0);
      expect(groups).toEqual([
        {
          errorCode: 0,
          groupId: "d4",
          state: "Stable",
          protocolType: "consumer",
          protocol: "roundrobin",
          members: [
            {
              memberId: joined.memberId,
              groupInstanceId: v >= 4 ? null : undefined,
              clientId: "unit",
              clientHost: "",
              metadata: "subscription".length,
              assignment: "assigned".length,
            },
          ],
          authorizedOperations: v === 4 ? (1 << 3) | (1 << 6) | (1 << 8) : -2147483648,
        },
      ]);
    }
  });
});

describe("fault hook and close", () => {
  it("answers with the injected error wherever the response has one, without changing state", async () => {
    const c = coordinator();
    const injected = ErrorCode.NOT_COORDINATOR;
    const join = await viaKafkajs(
      c,
      ApiKey.JoinGroup,
      "joinGroup",
      3,
      {
        groupId: "f",
        sessionTimeout: 30_000,
        rebalanceTimeout: 30_000,
        memberId: "",
        protocolType: "consumer",
        groupProtocols: protocols,
      },
      injected,
    );
    expect(join.errorCode).toBe(injected);
    const found = await viaKafkajs(
      c,
      ApiKey.FindCoordinator,
      "findCoordinator",
      2,
      { coordinatorKey: "f", coordinatorType: 0 },
      injected,
    );
    expect(found.errorCode).toBe(injected);
    const commit = await viaKafkajs(
      c,
      ApiKey.OffsetCommit,
      "offsetCommit",
      5,
      {
        groupId: "f",
        groupGenerationId: -1,
        memberId: "",
        topics: [{ topic: "t", partitions: [{ partition: 0, offset: "1" }] }],
      },
      injected,
    );
    expect(commit.responses[0].partitions[0].errorCode).toBe(injected);
    const fetched = await viaKafkajs(
      c,
      ApiKey.OffsetFetch,
      "offsetFetch",
      4,
      { groupId: "f", topics: [{ topic: "t", partitions: [{ partition: 0 }] }] },
      injected,
    );
    expect(fetched.errorCode).toBe(injected);
    expect(fetched.responses[0].partitions[0].errorCode).toBe(injected);
    const listed = await viaKafkajs(c, ApiKey.ListGroups, "listGroups", 2, undefined, injected);
    expect(listed.errorCode).toBe(injected);
    const hb = await viaKafkajs(
      c,
      ApiKey.Heartbeat,
      "heartbeat",
      3,
      { groupId: "f", groupGenerationId: 1, memberId: "m" },
      injected,
    );
    expect(hb.errorCode).toBe(injected);
    // Nothing was joined or committed.
    const described = await viaKafkajs(c, ApiKey.DescribeGroups, "describeGroups", 2, {
      groupIds: ["f"],
    });
    expect(described.groups[0].state).toBe("Dead");
  });

  it("answers a JoinGroup left waiting with COORDINATOR_NOT_AVAILABLE on close", async () => {
    const c = coordinator();
    const first = await joinAndSync(c, "closing", 3, 2);
    const waiting = viaKafkajs(c, ApiKey.JoinGroup, "joinGroup", 3, {
      groupId: "closing",
      sessionTimeout: 30_000,
      rebalanceTimeout: 30_000,
      memberId: "",
      protocolType: "consumer",
      groupProtocols: protocols,
    });
    expect(first.memberId).not.toBe("");
    c.close();
    expect((await waiting).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    const found = await viaKafkajs(c, ApiKey.FindCoordinator, "findCoordinator", 2, {
      coordinatorKey: "x",
      coordinatorType: 0,
    });
    expect(found.errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });

  it("advertises only classic versions", () => {
    const c = coordinator();
    const ranges = Object.fromEntries(
      c.handlers.map((h) => [h.name, [h.minVersion, h.maxVersion]]),
    );
    expect(ranges).toEqual({
      FindCoordinator: [0, 2],
      JoinGroup: [0, 5],
      SyncGroup: [0, 3],
      Heartbeat: [0, 3],
      LeaveGroup: [0, 3],
      OffsetCommit: [0, 7],
      OffsetFetch: [0, 5],
      DescribeGroups: [0, 4],
      ListGroups: [0, 2],
      DeleteGroups: [0, 1],
    });
    for (const h of c.handlers) expect(h.maxVersion).toBeLessThan(h.firstFlexibleVersion);
  });
});
