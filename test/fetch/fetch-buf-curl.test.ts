/**
 * A fetch stream read with `buf curl` (the gRPC protocol over h2c, schema from proto/):
 * a client outside this codebase decodes the messages; the message id field is unknown to
 * its schema and not printed. The stream never ends, so the test stops buf curl once it
 * printed what was expected.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, test } from "vitest";
import { parseJsonStream } from "../support/buf-curl.ts";
import { repoRoot } from "../support/gateway-process.ts";
import { type FetchHarness, recordValue, startFetchHarness } from "./fetch-harness.ts";

let harness: FetchHarness;

beforeAll(async () => {
  harness = await startFetchHarness();
});

afterAll(async () => {
  await harness?.close();
});

/** Runs buf curl until its output has `count` JSON messages (or `timeoutMs`), then stops it. */
function bufCurlMessages(url: string, headers: string[], count: number, timeoutMs: number) {
  return new Promise<{ messages: unknown[]; stderr: string }>((resolve, reject) => {
    const args = [
      "buf",
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--schema",
      "proto",
    ];
    for (const h of headers) args.push("-H", h);
    args.push("-d", "{}", `${url}/example.FanoutService/FanoutServerStream`);
    // Its own process group: npx runs buf as a child, and stopping npx alone would orphan it.
    const proc = spawn("npx", args, {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const stop = () => {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    };
    let stdout = "";
    let stderr = "";
    let messages: unknown[] = [];
    const finish = () => {
      clearTimeout(timer);
      stop();
      resolve({ messages, stderr });
    };
    const timer = setTimeout(finish, timeoutMs);
    proc.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      messages = parseJsonStream(stdout);
      if (messages.length >= count) finish();
    });
    proc.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    proc.on("error", reject);
    proc.on("exit", () => {
      clearTimeout(timer);
      resolve({ messages: parseJsonStream(stdout), stderr });
    });
  });
}

test("fetch.buf.curl", { timeout: 120_000 }, async () => {
  const topic = "fetch-buf-curl";
  harness.createTopic(topic, 1);
  await harness.produce(
    topic,
    ["one", "two", 'three "3" \\'].map((t) => ({ value: recordValue(t) })),
  );
  const { messages, stderr } = await bufCurlMessages(
    harness.url,
    [`x-test-topic: ${topic}`],
    3,
    90_000,
  );
  expect(messages, stderr).toEqual([
    { message: "one" },
    { message: "two" },
    { message: 'three "3" \\' },
  ]);
});
