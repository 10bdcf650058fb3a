/**
 * What a bench process reports about itself: CPU time and resident memory, with a
 * sampler for peak RSS (not every runtime reports a peak of its own).
 */

export interface ProcessStats {
  /** CPU time used since the process started, microseconds (user + system). */
  cpuUs: number;
  rssBytes: number;
  /** Highest RSS seen by the sampler (and by the OS, where the runtime reports it). */
  peakRssBytes: number;
  heapUsedBytes: number;
}

/** A gateway's figures: both processes added up, and north's (and west's, split) alone. */
export type GatewayStats = ProcessStats & { north: ProcessStats; west?: ProcessStats };

let peakRss = 0;

/** Samples RSS every `intervalMs` to track the peak; returns a stopper. */
export function startRssSampler(intervalMs = 50): () => void {
  const sample = () => {
    const rss = process.memoryUsage.rss();
    if (rss > peakRss) peakRss = rss;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref?.();
  return () => clearInterval(timer);
}

/** Resets the sampled peak to the current RSS (to measure the peak of one phase). */
export function resetPeakRss(): void {
  peakRss = process.memoryUsage.rss();
}

/** Runs a full garbage collection where the runtime lets us (Bun always; Node with --expose-gc). */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

/** This process's CPU and memory now. */
export function processStats(opts: { gc?: boolean } = {}): ProcessStats {
  if (opts.gc) collectGarbage();
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  if (memory.rss > peakRss) peakRss = memory.rss;
  return {
    cpuUs: cpu.user + cpu.system,
    rssBytes: memory.rss,
    peakRssBytes: peakRss,
    heapUsedBytes: memory.heapUsed,
  };
}

/** Counts of live JS objects by type after a full GC (Bun's `bun:jsc`; empty elsewhere). */
export async function heapTypes(): Promise<Record<string, number>> {
  if (!(process.versions as { bun?: string }).bun) return {};
  // A variable specifier: the module exists only under Bun, and has no type declarations.
  const specifier = "bun:jsc";
  const jsc = (await import(specifier)) as {
    heapStats(): { objectTypeCounts: Record<string, number> };
  };
  collectGarbage();
  return jsc.heapStats().objectTypeCounts;
}
