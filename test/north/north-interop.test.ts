/**
 * Interop with tools that share no code with the gateway: records written by north, read
 * back with kcat (librdkafka), match docs/contract.md: Request records exactly; and `buf curl` (Go gRPC client) calls
 * through north work for all four call shapes.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EchoRequestSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { parseJsonStream } from "../support/buf-curl.ts";
import { bin } from "../support/gateway-process.ts";
import { type NorthFixture, requestTopic, startNorthFixture } from "./north-fixture.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
let fx: NorthFixture;

beforeAll(async () => {
  fx = await startNorthFixture((config) => {
    const route = config.routes[0];
    if (route?.with.capability === "produce") {
      route.with.overrides = { "x-tenant": "acme", "x-zone": "eu" };
    }
  });
});

afterAll(async () => {
  await fx?.close();
});

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
function run(command: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { cwd: root, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${command} failed: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

interface KcatRecord {
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  headers: string[] | null;
}

/** Every record of the request topic, as kcat prints it (-J: one JSON object per line). */
async function kcatRecords(): Promise<KcatRecord[]> {
  const out = await run("kcat", [
    "-C",
    "-J",
    "-e",
    "-q",
    "-o",
    "beginning",
    "-b",
    fx.broker.bootstrap,
    "-t",
    requestTopic,
  ]);
  return out
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => JSON.parse(line) as KcatRecord);
}

/** kcat's flat header list as pairs. */
const pairs = (flat: string[] | null) =>
  (flat ?? []).flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1] ?? ""]] : []));

/** `buf curl` over h2c with the repo's proto schema; the printed JSON messages. */
async function bufCurl(method: string, data: string): Promise<Array<{ message?: string }>> {
  const out = await run(
    bin("buf"),
    [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--schema",
      "proto",
      "--data",
      "@-",
      `${fx.url}/grpc.examples.echo.Echo/${method}`,
    ],
    data,
  );
  return parseJsonStream(out) as Array<{ message?: string }>;
}

describe("north interop", () => {
  test("records.match.spec.kcat", async () => {
    const started = Date.now();
    await fx.client.unaryEcho(
      { message: "read me with kcat" },
      { timeoutMs: 15_000, headers: { "x-request": "r1", "x-blob-bin": "AQID" } },
    );
    const records = await kcatRecords();
    const mine = records.filter((r) => pairs(r.headers).some(([, v]) => v === "r1"));
    expect(mine).toHaveLength(2);
    const [message, end] = mine as [KcatRecord, KcatRecord];

    const digest = createHash("md5")
      .update(
        "zilla:servicegrpc.examples.echo.Echozilla:methodUnaryEchozilla:reply-toecho-responsesacmeeu",
      )
      .digest("hex");
    const id = message.key ?? "";
    expect(id).toMatch(new RegExp(`^[0-9a-f-]{36}-${digest}$`));
    const headers = pairs(message.headers);
    const deadline = Number(headers.find(([n]) => n === "zilla:deadline")?.[1]);
    expect(deadline).toBeGreaterThan(started);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 15_000);
    // Exactly these headers, in this order (docs/contract.md: Request records, difference 2).
    expect(headers).toEqual([
      ["x-tenant", "acme"],
      ["x-zone", "eu"],
      ["zilla:service", "grpc.examples.echo.Echo"],
      ["zilla:method", "UnaryEcho"],
      ["zilla:reply-to", "echo-responses"],
      ["zilla:correlation-id", id],
      ["zilla:deadline", String(deadline)],
      ["meta:x-blob-bin", "AQID"],
      ["meta:x-request", "r1"],
    ]);
    const bytes = toBinary(
      EchoRequestSchema,
      create(EchoRequestSchema, { message: "read me with kcat" }),
    );
    expect(Buffer.from(message.payload ?? "", "utf8")).toEqual(Buffer.from(bytes));

    // The end marker: null value, same key, same headers, same partition, right after.
    expect(end.payload).toBeNull();
    expect(end.key).toBe(id);
    expect(pairs(end.headers)).toEqual(headers);
    expect(end.partition).toBe(message.partition);
    expect(end.offset).toBeGreaterThan(message.offset);
  });

  test("records.empty.message.not.null.kcat", async () => {
    await fx.client.unaryEcho({ message: "" }, { headers: { "x-request": "empty-message" } });
    const records = await kcatRecords();
    const mine = records.filter((r) => pairs(r.headers).some(([, v]) => v === "empty-message"));
    // A zero-length message is an empty value, the end marker a null one.
    expect(mine.map((r) => r.payload)).toEqual(["", null]);
  });

  test("buf.curl.unary", async () => {
    expect(await bufCurl("UnaryEcho", '{"message":"from buf curl"}')).toEqual([
      { message: "from buf curl" },
    ]);
  });

  test("buf.curl.server.stream", async () => {
    const replies = await bufCurl("ServerStreamingEcho", '{"message":"stream:3:buf"}');
    expect(replies).toEqual(Array(3).fill({ message: "stream:3:buf" }));
  });

  test("buf.curl.client.stream", async () => {
    const replies = await bufCurl(
      "ClientStreamingEcho",
      '{"message":"one"}\n{"message":"two"}\n{"message":"three"}\n',
    );
    expect(replies).toEqual([{ message: "one,two,three" }]);
  });

  test("buf.curl.bidi.stream", async () => {
    const replies = await bufCurl(
      "BidirectionalStreamingEcho",
      '{"message":"b1"}\n{"message":"b2"}\n',
    );
    expect(replies).toEqual([{ message: "b1" }, { message: "b2" }]);
  });
});
