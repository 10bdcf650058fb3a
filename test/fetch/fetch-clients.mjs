/**
 * Many fetch clients in a process of their own (so the test process's RSS is the
 * gateway's and the broker's, not the clients'). Hand-framed gRPC over node:http2: each
 * call sends one empty message and reads FanoutMessage{string message = 1} frames.
 *
 * Usage: node fetch-clients.mjs <url> <topic> <clients> <connections> <partitions>
 * Reads target record counts per partition from stdin, one per line; after each one is
 * reached by every call, writes {"reached": n, "complete": k, "rssBytes": r} to stdout.
 * Every message text is "p<partition>-<index>", and each call must see every index of
 * every partition in order; a call that does not is counted as not complete.
 */
import http2 from "node:http2";
import { createInterface } from "node:readline";

const [url, topic, clientsText, connectionsText, partitionsText] = process.argv.slice(2);
const clients = Number(clientsText);
const connections = Number(connectionsText);
const partitions = Number(partitionsText);

const sessions = Array.from({ length: connections }, () => {
  const session = http2.connect(url);
  session.on("error", () => {});
  return session;
});

/** Per call: next expected index per partition, and whether it ever saw a gap. */
const calls = Array.from({ length: clients }, (_, i) => {
  const state = { next: new Array(partitions).fill(0), broken: false };
  const session = sessions[i % connections];
  const request = session.request({
    ":method": "POST",
    ":path": "/example.FanoutService/FanoutServerStream",
    "content-type": "application/grpc",
    te: "trailers",
    "x-test-topic": topic,
  });
  request.on("error", () => {});
  request.end(Buffer.alloc(5));
  let buffered = Buffer.alloc(0);
  request.on("data", (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      onMessage(state, buffered.subarray(5, 5 + length));
      buffered = buffered.subarray(5 + length);
    }
    check();
  });
  return state;
});

function onMessage(state, body) {
  // Field 1 (tag 0x0a), a length varint below 128 for these short texts, then the text.
  if (body[0] !== 0x0a || body[1] >= 0x80) {
    state.broken = true;
    return;
  }
  const text = body.subarray(2, 2 + body[1]).toString();
  const match = /^p(\d+)-(\d+)$/.exec(text);
  if (!match || Number(match[2]) !== state.next[Number(match[1])]) {
    state.broken = true;
    return;
  }
  state.next[Number(match[1])] = Number(match[2]) + 1;
}

const targets = [];
function check() {
  const target = targets[0];
  if (target === undefined) return;
  if (!calls.every((c) => c.broken || c.next.every((n) => n >= target))) return;
  targets.shift();
  const complete = calls.filter((c) => !c.broken && c.next.every((n) => n === target)).length;
  process.stdout.write(
    `${JSON.stringify({ reached: target, complete, rssBytes: process.memoryUsage().rss })}\n`,
  );
}

createInterface({ input: process.stdin }).on("line", (line) => {
  targets.push(Number(line));
  check();
});
process.stdin.on("end", () => {
  for (const session of sessions) session.destroy();
  process.exit(0);
});
