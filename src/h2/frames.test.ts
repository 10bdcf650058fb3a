/**
 * The frame queue on its own: what a turn hands the socket, byte for byte, when its frames
 * fill more than one buffer and when DATA payloads are large enough to go out as they are.
 */
import { describe, expect, it } from "vitest";
import { FrameQueue, frameType, readFrames } from "./frames.ts";

interface Written {
  writes: Uint8Array[][];
  queue: FrameQueue;
}

/** A queue whose turns are recorded: one entry per socket write (one part, or several corked). */
function recordingQueue(): Written {
  const writes: Uint8Array[][] = [];
  const queue = new FrameQueue(
    (bytes) => writes.push([bytes]),
    (parts) => writes.push([...parts]),
    () => true,
  );
  return { writes, queue };
}

/** The frames in `bytes`, as type, stream and payload. */
function framesOf(bytes: Buffer): { type: number; id: number; payload: Buffer }[] {
  const out: { type: number; id: number; payload: Buffer }[] = [];
  const end = readFrames(
    bytes,
    0,
    (type, _flags, id, payload) => {
      out.push({ type, id, payload: Buffer.from(payload) });
    },
    () => false,
  );
  expect(end).toBe(bytes.length);
  return out;
}

const filled = (n: number, seed: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * seed) & 0xff));

describe("FrameQueue", () => {
  it("writes a turn of small frames as one buffer, in order", async () => {
    const { writes, queue } = recordingQueue();
    queue.frame(frameType.ping, 0, 0, filled(8, 3));
    queue.data(1, 0, [filled(5, 1), filled(100, 7)], 105);
    expect(queue.bytes).toBe(9 + 8 + 9 + 105);
    await Promise.resolve();
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(1);
    const frames = framesOf(Buffer.from(writes[0]?.[0] as Uint8Array));
    expect(frames.map((f) => [f.type, f.id, f.payload.length])).toEqual([
      [frameType.ping, 0, 8],
      [frameType.data, 1, 105],
    ]);
    expect(frames[1]?.payload.equals(Buffer.concat([filled(5, 1), filled(100, 7)]))).toBe(true);
    expect(queue.bytes).toBe(0);
    expect(queue.written).toBe(9 + 8 + 9 + 105);
  });

  it("passes a large DATA chunk to the socket as it was queued, also the part a window cut", async () => {
    const { writes, queue } = recordingQueue();
    const prefix = filled(5, 1);
    const message = filled(10_240, 13);
    const queued = [prefix, message];
    queue.data(1, 0, queued, 4000); // the window takes the prefix and 3,995 bytes
    queue.data(1, 1, queued, 6245); // the rest, ending the stream
    expect(queued).toEqual([]);
    queue.frame(frameType.ping, 0, 0, filled(8, 3));
    await Promise.resolve();
    expect(writes).toHaveLength(1);
    const parts = writes[0] as Uint8Array[];
    // the message's two pieces are views of its own bytes, not copies
    const views = parts.filter((p) => p.buffer === message.buffer);
    expect(views.map((p) => p.length)).toEqual([3995, 6245]);
    const frames = framesOf(Buffer.concat(parts));
    expect(frames.map((f) => [f.type, f.payload.length])).toEqual([
      [frameType.data, 4000],
      [frameType.data, 6245],
      [frameType.ping, 8],
    ]);
    const sent = Buffer.concat(frames.slice(0, 2).map((f) => f.payload));
    expect(sent.equals(Buffer.concat([prefix, message]))).toBe(true);
    expect(queue.written).toBe(9 + 4000 + 9 + 6245 + 9 + 8);
  });

  it("starts another buffer when a turn outgrows its own, without rewriting what it holds", async () => {
    const { writes, queue } = recordingQueue();
    const payloads = Array.from({ length: 40 }, (_, i) => filled(1000 + i, i + 1));
    for (const [i, p] of payloads.entries()) queue.data(2 * i + 1, 0, [p], p.length);
    const total = payloads.reduce((n, p) => n + 9 + p.length, 0);
    expect(queue.bytes).toBe(total);
    await Promise.resolve();
    expect(writes).toHaveLength(1);
    const parts = writes[0] as Uint8Array[];
    expect(parts.length).toBeGreaterThan(1);
    const frames = framesOf(Buffer.concat(parts));
    expect(frames.map((f) => f.id)).toEqual(payloads.map((_, i) => 2 * i + 1));
    for (const [i, f] of frames.entries())
      expect(f.payload.equals(payloads[i] as Buffer)).toBe(true);
    // the next turn's buffer is sized like this one (up to the hint's cap): one write of one part
    for (const [i, p] of payloads.slice(0, 20).entries()) queue.data(2 * i + 1, 0, [p], p.length);
    await Promise.resolve();
    expect(writes[1]).toHaveLength(1);
  });

  it("holds a turn until ready, and drops it on clear", async () => {
    let ready = false;
    const writes: Uint8Array[][] = [];
    const queue = new FrameQueue(
      (bytes) => writes.push([bytes]),
      (parts) => writes.push([...parts]),
      () => ready,
    );
    queue.data(1, 0, [filled(3000, 5)], 3000);
    await Promise.resolve();
    expect(writes).toHaveLength(0);
    expect(queue.bytes).toBe(3009);
    ready = true;
    queue.flush();
    expect(writes).toHaveLength(1);
    expect(Buffer.concat(writes[0] as Uint8Array[]).length).toBe(3009);
    queue.data(1, 0, [filled(3000, 5)], 3000);
    queue.clear();
    expect(queue.bytes).toBe(0);
    await Promise.resolve();
    expect(writes).toHaveLength(1);
  });
});
