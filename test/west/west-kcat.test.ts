/**
 * Interop with Zilla-format records written and read by another Kafka client (librdkafka
 * through kcat): west serves requests kcat produced, and kcat reads its replies (docs/contract.md: Reply records).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EchoServer,
  replyTopic,
  requestTopic,
  startEchoServer,
  startWestBench,
  type WestBench,
} from "./west-harness.ts";

const run = promisify(execFile);

let bench: WestBench;
let echo: EchoServer;
let dir: string;

beforeAll(async () => {
  bench = await startWestBench(1);
  echo = await startEchoServer();
  await bench.startWest(`127.0.0.1:${echo.port}`);
  dir = await mkdtemp(join(tmpdir(), "west-kcat-"));
});

afterAll(async () => {
  await bench?.close();
  await echo?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** kcat's -J envelope for one record. */
interface KcatRecord {
  key: string | null;
  payload: string | null;
  headers?: string[];
}

describe("west with kcat", () => {
  it("kcat.request.served.kcat.reads.reply", async () => {
    const id = "kcat-1-46ae5cdb4b46cbb367cbad0bea36a56f";
    const headers = [
      "zilla:service=grpc.examples.echo.Echo",
      "zilla:method=UnaryEcho",
      `zilla:reply-to=${replyTopic}`,
      `zilla:correlation-id=${id}`,
      "meta:x-from=kcat",
    ].flatMap((h) => ["-H", h]);
    const base = ["-P", "-b", bench.broker.bootstrap, "-t", requestTopic, ...headers];
    // EchoRequest{message:"hi"}: one file is one record, bytes as they are.
    const message = join(dir, "message.bin");
    await writeFile(message, Uint8Array.from([0x0a, 0x02, 0x68, 0x69]));
    await run("kcat", [...base, "-k", id, message]);
    // The request end: a "key:" line with an empty value, sent as NULL (-Z). kcat skips an
    // empty line under a fixed -k key, so the key comes from the line (-K:).
    const end = join(dir, "end.txt");
    await writeFile(end, `${id}:\n`);
    await run("kcat", [...base, "-K:", "-Z", "-l", end]);

    await bench.reply(id);
    const { stdout } = await run("kcat", [
      "-C",
      "-b",
      bench.broker.bootstrap,
      "-t",
      replyTopic,
      "-o",
      "beginning",
      "-e",
      "-J",
    ]);
    const records = stdout
      .split("\n")
      .filter((line) => line.trim().startsWith("{"))
      .map((line) => JSON.parse(line) as KcatRecord)
      .filter((r) => r.key === id);
    expect(records).toHaveLength(2);
    const [reply, tombstone] = records;
    expect(reply?.payload).toBe("\n\u0002hi");
    expect(pairs(reply?.headers)).toEqual(
      expect.arrayContaining([
        ["zilla:correlation-id", id],
        ["meta:x-echo", "1"],
      ]),
    );
    expect(tombstone?.payload).toBeNull();
    expect(pairs(tombstone?.headers)).toEqual(
      expect.arrayContaining([
        ["zilla:correlation-id", id],
        ["zilla:status", "0"],
      ]),
    );
    const seen = echo.requests.find((r) => r.messages[0] === "hi");
    expect(seen?.headers.get("x-from")).toBe("kcat");
  });
});

function pairs(flat: string[] | undefined): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < (flat ?? []).length; i += 2) {
    out.push([flat?.[i] as string, flat?.[i + 1] as string]);
  }
  return out;
}
