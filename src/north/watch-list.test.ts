import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { defaultEdgeLimits } from "../config/types.ts";
import { createLogger } from "../ops/logger.ts";
import { GuardedConnection, StreamWatch, WatchList } from "./connection-guard.ts";
import { ActiveCalls, type ProduceCall } from "./produce-call.ts";

const socket = { remoteAddress: "127.0.0.1", remotePort: 1 } as unknown as Socket;
const connection = new GuardedConnection(socket, defaultEdgeLimits(), createLogger("error"));
const target = { writableLength: 0, once: () => {}, destroy: () => {} };
const watches = (n: number): StreamWatch[] =>
  Array.from({ length: n }, () => new StreamWatch(connection, target));

describe("watch list (a connection's open calls)", () => {
  it("lists watches in opening order and takes any out", () => {
    const list = new WatchList();
    const [a, b, c, d] = watches(4) as [StreamWatch, StreamWatch, StreamWatch, StreamWatch];
    for (const w of [a, b, c, d]) list.add(w);
    list.add(b); // already in: no change
    expect(list.size).toBe(4);
    expect([...list]).toEqual([a, b, c, d]);
    expect(list.delete(c)).toBe(true);
    expect(list.delete(c)).toBe(false);
    expect(list.delete(a)).toBe(true);
    expect([...list]).toEqual([b, d]);
    expect(list.delete(d)).toBe(true);
    list.add(a);
    expect([...list]).toEqual([b, a]);
    expect(list.size).toBe(2);
  });

  it("goes on past the watch it is at when that one is taken out", () => {
    const list = new WatchList();
    const all = watches(5);
    for (const w of all) list.add(w);
    const seen: StreamWatch[] = [];
    for (const w of list) {
      seen.push(w);
      if (seen.length % 2 === 1) list.delete(w);
    }
    expect(seen).toEqual(all);
    expect([...list]).toEqual([all[1], all[3]]);
  });
});

describe("active calls", () => {
  const call = (): ProduceCall => ({ activeIndex: -1 }) as unknown as ProduceCall;

  it("holds each call once and lets any go, the others kept", () => {
    const active = new ActiveCalls();
    const calls = Array.from({ length: 5 }, call);
    for (const c of calls) active.add(c);
    active.add(calls[0] as ProduceCall);
    expect(active.size).toBe(5);
    active.delete(calls[1] as ProduceCall);
    active.delete(calls[1] as ProduceCall);
    active.delete(calls[4] as ProduceCall);
    expect(active.size).toBe(3);
    expect(new Set(active.values())).toEqual(new Set([calls[0], calls[2], calls[3]]));
    for (const c of active.values()) active.delete(c);
    expect(active.size).toBe(0);
    expect(calls.every((c) => c.activeIndex === -1)).toBe(true);
  });
});
