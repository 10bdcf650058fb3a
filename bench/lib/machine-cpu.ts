/**
 * CPU the machine spends outside the bench's own processes (Linux, from /proc): on a shared
 * machine another tenant's work during one side's window, and not the other's, moves a
 * gateway ÷ floor ratio by a third. Each point records it, so such a window can be told
 * from a slower path.
 */
import { readdirSync, readFileSync } from "node:fs";

/** One process from /proc/<pid>/stat: its parent and its CPU ticks (reaped children included). */
export interface ProcCpu {
  pid: number;
  ppid: number;
  ticks: number;
}

/** The machine's busy ticks (all CPUs) and those of the bench's process tree, at one moment. */
export interface MachineCpu {
  busyTicks: number;
  benchTicks: number;
}

const ticksPerSecond = 100;

/** A /proc/<pid>/stat line as ProcCpu; undefined when it does not parse. */
export function parseProcStat(line: string): ProcCpu | undefined {
  const close = line.lastIndexOf(")");
  if (close < 0) return undefined;
  const pid = Number(line.slice(0, line.indexOf(" ")));
  // After "(comm) ": state, ppid, … utime (14th field), stime, cutime, cstime.
  const fields = line.slice(close + 2).split(" ");
  const ppid = Number(fields[1]);
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  if (!Number.isFinite(pid) || !Number.isFinite(ppid) || !Number.isFinite(ticks)) return undefined;
  return { pid, ppid, ticks };
}

/** A process's own CPU time so far (every thread) and its minor page faults. */
export interface ProcessUsage {
  userS: number;
  systemS: number;
  minorFaults: number;
}

/** ProcessUsage of `pid` from /proc/<pid>/stat; undefined when it cannot be read. */
export function processUsage(pid: number): ProcessUsage | undefined {
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // After "(comm) ": state (1st), … minflt (8th), … utime (12th), stime (13th).
  const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
  return {
    minorFaults: Number(fields[7]),
    userS: Number(fields[11]) / ticksPerSecond,
    systemS: Number(fields[12]) / ticksPerSecond,
  };
}

/** CPU seconds (user + system, every thread) `pid` used so far; NaN when it cannot be read. */
export function processCpuSeconds(pid: number): number {
  const usage = processUsage(pid);
  return usage ? usage.userS + usage.systemS : Number.NaN;
}

/**
 * Ticks of `root` and every process below it. A child reaped meanwhile has moved its ticks
 * into its parent's (cutime/cstime), so the sum does not drop when one exits.
 */
export function treeTicks(procs: readonly ProcCpu[], root: number): number {
  const children = new Map<number, ProcCpu[]>();
  for (const p of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const self = procs.find((p) => p.pid === root);
  if (!self) return 0;
  let sum = 0;
  const stack = [self];
  for (let p = stack.pop(); p; p = stack.pop()) {
    sum += p.ticks;
    stack.push(...(children.get(p.pid) ?? []));
  }
  return sum;
}

/** Busy and idle ticks of the whole machine so far, from the first line of /proc/stat. */
export function parseCpuTicks(procStat: string): { busy: number; idle: number } {
  const fields = (procStat.split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user and nice):
  // idle and iowait are not busy.
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, idle };
}

/** Busy ticks of the whole machine so far, from the first line of /proc/stat. */
export function parseBusyTicks(procStat: string): number {
  return parseCpuTicks(procStat).busy;
}

/** Reads the machine's and the bench tree's CPU now; undefined where /proc is not there. */
export function readMachineCpu(root = process.pid): MachineCpu | undefined {
  try {
    const busyTicks = parseBusyTicks(readFileSync("/proc/stat", "utf8"));
    const procs: ProcCpu[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const p = parseProcStat(readFileSync(`/proc/${name}/stat`, "utf8"));
        if (p) procs.push(p);
      } catch {
        // Exited between the listing and the read.
      }
    }
    return { busyTicks, benchTicks: treeTicks(procs, root) };
  } catch {
    return undefined;
  }
}

/** Cores busy outside the bench between two readings `windowMs` apart (0 or more). */
export function otherCores(
  before: MachineCpu | undefined,
  after: MachineCpu | undefined,
  windowMs: number,
): number | undefined {
  if (!before || !after || windowMs <= 0) return undefined;
  const other = after.busyTicks - before.busyTicks - (after.benchTicks - before.benchTicks);
  return Math.max(0, Math.round((other / ticksPerSecond / (windowMs / 1000)) * 100) / 100);
}
