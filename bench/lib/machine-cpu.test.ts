import { describe, expect, it } from "vitest";
import {
  otherCores,
  parseBusyTicks,
  parseCpuTicks,
  parseProcStat,
  readMachineCpu,
  treeTicks,
} from "./machine-cpu.ts";

describe("machine CPU outside the bench", () => {
  it("reads a process's parent and ticks, reaped children included, past a comm with spaces", () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
    const line = "42 (bun load (1)) S 7 42 42 0 -1 4194560 10 0 0 0 150 25 300 5 20 0 9 0";
    expect(parseProcStat(line)).toEqual({ pid: 42, ppid: 7, ticks: 150 + 25 + 300 + 5 });
    expect(parseProcStat("garbage")).toBeUndefined();
  });

  it("adds up a process tree and nothing outside it", () => {
    const procs = [
      { pid: 1, ppid: 0, ticks: 1000 },
      { pid: 10, ppid: 1, ticks: 5 }, // the harness
      { pid: 11, ppid: 10, ticks: 7 }, // north
      { pid: 12, ppid: 11, ticks: 11 }, // west, north's child
      { pid: 20, ppid: 1, ticks: 500 }, // another tenant
    ];
    expect(treeTicks(procs, 10)).toBe(23);
    expect(treeTicks(procs, 99)).toBe(0);
  });

  it("counts busy ticks without idle and iowait, and turns a window into cores", () => {
    expect(parseBusyTicks("cpu  100 2 30 1000 50 3 4 5 0 0\ncpu0 1 2 3")).toBe(
      100 + 2 + 30 + 3 + 4 + 5,
    );
    // Guest ticks (the last two) are inside user and nice already: not counted twice.
    expect(parseCpuTicks("cpu  100 2 30 1000 50 3 4 5 7 1")).toEqual({
      busy: 100 + 2 + 30 + 3 + 4 + 5,
      idle: 1000 + 50,
    });
    const before = { busyTicks: 1000, benchTicks: 400 };
    // 2 s: 300 busy ticks, 100 of them the bench's: 200 ticks = 2 s of CPU = 1 core.
    expect(otherCores(before, { busyTicks: 1300, benchTicks: 500 }, 2000)).toBe(1);
    expect(otherCores(before, { busyTicks: 1100, benchTicks: 520 }, 2000)).toBe(0);
    expect(otherCores(undefined, before, 2000)).toBeUndefined();
  });

  it("reads this machine where /proc exists", () => {
    const now = readMachineCpu();
    if (process.platform !== "linux") {
      expect(now).toBeUndefined();
      return;
    }
    expect(now?.busyTicks).toBeGreaterThan(0);
    expect(now?.benchTicks).toBeGreaterThan(0);
  });
});
