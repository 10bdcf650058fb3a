/**
 * A foreign producer on a foreign Kafka: kcat (librdkafka) writes a call's request records
 * to librdkafka's mock cluster, west (in the gateway) calls the echo upstream and answers,
 * and kcat reads the reply records back.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockStack, startMockStack } from "../support/mock-stack.ts";
import { replyTopic, requestTopic } from "../support/stack.ts";

const run = promisify(execFile);

let stack: MockStack;
let dir: string;

beforeAll(async () => {
  stack = await startMockStack({ brokers: 3 });
  dir = await mkdtemp(join(tmpdir(), "mock-kcat-"));
}, 60_000);

afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface KcatRecord {
  key: string | null;
  payload: string | null;
  headers?: string[];
}

/** Every record of `topic` with key `key`, as kcat reads them from the beginning. */
async function kcatRead(topic: string, key: string): Promise<KcatRecord[]> {
  const { stdout } = await run(
    "kcat",
    ["-C", "-b", stack.mock.bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
    { timeout: 30_000 },
  );
  return stdout
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => JSON.parse(line) as KcatRecord)
    .filter((r) => r.key === key);
}

function pairs(flat: string[] | undefined): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < (flat ?? []).length; i += 2) {
    out.push([flat?.[i] as string, flat?.[i + 1] as string]);
  }
  return out;
}

describe("kcat as a foreign producer on the mock cluster", () => {
  it("west answers request records kcat wrote, and kcat reads the reply", async () => {
    const id = "mock-kcat-1-46ae5cdb4b46cbb367cbad0bea36a56f";
    const headers = [
      "zilla:service=grpc.examples.echo.Echo",
      "zilla:method=UnaryEcho",
      `zilla:reply-to=${replyTopic}`,
      `zilla:correlation-id=${id}`,
      "meta:x-from=kcat",
    ].flatMap((h) => ["-H", h]);
    // acks 1: the mock has no idempotent producer, and librdkafka's default is acks all.
    const base = ["-P", "-b", stack.mock.bootstrap, "-t", requestTopic, "-X", "acks=1", ...headers];
    // EchoRequest{message:"from kcat"}: one file is one record, bytes as they are.
    const message = join(dir, "message.bin");
    const text = "from kcat";
    await writeFile(message, Uint8Array.from([0x0a, text.length, ...Buffer.from(text)]));
    await run("kcat", [...base, "-k", id, message]);
    // The request's end: a "key:" line with an empty value, sent as NULL (-Z).
    const end = join(dir, "end.txt");
    await writeFile(end, `${id}:\n`);
    await run("kcat", [...base, "-K:", "-Z", "-l", end]);

    await expect.poll(() => kcatRead(replyTopic, id), { timeout: 30_000 }).toHaveLength(2);
    const [reply, tombstone] = await kcatRead(replyTopic, id);
    expect(reply?.payload).toBe(`\n\u0009${text}`);
    expect(pairs(reply?.headers)).toEqual(expect.arrayContaining([["zilla:correlation-id", id]]));
    expect(tombstone?.payload).toBeNull();
    expect(pairs(tombstone?.headers)).toEqual(
      expect.arrayContaining([
        ["zilla:correlation-id", id],
        ["zilla:status", "0"],
      ]),
    );
    const seen = stack.echo.requests.find((r) => r.messages[0] === text);
    expect(seen?.method).toBe("UnaryEcho");
    expect(seen?.headers.get("x-from")).toBe("kcat");
  });
});
