/**
 * How fast west restores its changelog (docs/idempotency.md, "Restore cost"): writes
 * `--entries` changelog entries (a STARTED and a FINISHED per call, the FINISHED with a
 * unary echo reply of `--payload-bytes` inline, every call keyed) to one partition of a
 * broker in its own process, then times `restoreChangelog` reading them all back.
 *
 *   npx bun bench/profile/changelog-restore.ts [--entries 200000] [--payload-bytes 100]
 *     [--unkeyed true]
 */
import { createKafka } from "../../src/kafka/kafka-client.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { encodeEntry } from "../../src/west/changelog-codec.ts";
import { restoreChangelog } from "../../src/west/changelog-restore.ts";
import { startChangelogWriter } from "../../src/west/changelog-writer.ts";
import { spawnChild } from "../lib/child.ts";
import { parseArgs } from "../lib/child-channel.ts";

const args = parseArgs();
const entries = Number(args.get("entries") ?? 200_000);
const payloadBytes = Number(args.get("payload-bytes") ?? 100);
const topic = "bench-changelog";
// --unkeyed: calls without an idempotency key, all committed: restore reads and drops them.
const unkeyed = args.get("unkeyed") === "true";

const broker = spawnChild<{ bootstrap: string }>("broker", "processes/broker.ts", [
  "--partitions",
  "1",
  "--topics",
  topic,
  // Every entry written must still be there when the restore reads them.
  "--retention-ms",
  "0",
]);
const { bootstrap } = await broker.ready;
const kafka = createKafka({ servers: [bootstrap] }, "restore-bench");
try {
  const writer = await startChangelogWriter(kafka, { acks: "leader_only" });
  const value = new Uint8Array(payloadBytes).fill(0x61);
  const writeStartedAt = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < entries / 2; i++) {
    const id = `key-${i}-0123456789abcdef0123456789abcdef`;
    const head = { keyed: !unkeyed, requestEnded: true, requestOffset: BigInt(2 * i), attempt: 1 };
    const records = [
      { key: id, value, headers: [["zilla:correlation-id", id]] as [string, string][] },
      {
        key: id,
        value: null,
        headers: [
          ["zilla:correlation-id", id],
          ["zilla:status", "0"],
        ] as [string, string][],
      },
    ];
    inFlight.push(writer.write(topic, 0, id, encodeEntry({ kind: "started", ...head })));
    inFlight.push(
      writer.write(
        topic,
        0,
        id,
        encodeEntry({
          kind: "finished",
          ...head,
          reply: { status: 0, replyBytes: payloadBytes + 150, replyTo: "echo-responses", records },
        }),
      ),
    );
    // Bounded: the writer gathers what is queued per turn; a million promises would not help.
    if (inFlight.length >= 4_000) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
  await writer.close();
  const writeMs = performance.now() - writeStartedAt;

  const result = await restoreChangelog({
    kafka,
    changelog: topic,
    partitions: [{ partition: 0, committed: unkeyed ? BigInt(entries) : 0n }],
    windowMs: 3_600_000,
    logger: silentLogger,
  });
  const kept = result.calls.get(0)?.length ?? 0;
  const seconds = result.durationMs / 1000;
  console.log(
    `wrote ${entries} entries in ${Math.round(writeMs)} ms; restored ${result.entries} entries ` +
      `(${(result.bytes / 1e6).toFixed(1)} MB, ${kept} calls kept) in ${Math.round(result.durationMs)} ms: ` +
      `${Math.round(result.entries / seconds)} entries/s, ${(result.bytes / 1e6 / seconds).toFixed(1)} MB/s`,
  );
} finally {
  await broker.stop();
}
