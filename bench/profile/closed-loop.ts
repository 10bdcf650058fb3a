/**
 * The closed-loop measurement of the Kafka profiling script (kafka-loop.ts): `c` callers each call
 * back to back for a while, after a 500 ms warm-up, and one line reports calls/s, p50/p99 and
 * CPU per call in this process and in the broker.
 */
import { percentile } from "../lib/stats.ts";

/** The broker child's CPU counter, as the profiling scripts' broker reports it. */
export interface BrokerCpu {
  request<T>(what: "stats"): Promise<T>;
}

/** Runs `call` at each concurrency for `durationMs` and prints one line per concurrency. */
export async function measureClosedLoop(
  concurrencies: readonly number[],
  durationMs: number,
  call: () => Promise<unknown>,
  broker: BrokerCpu,
): Promise<void> {
  for (const c of concurrencies) {
    const run = async (ms: number) => {
      const latencies: number[] = [];
      const end = performance.now() + ms;
      await Promise.all(
        Array.from({ length: c }, async () => {
          while (performance.now() < end) {
            const t0 = performance.now();
            await call();
            latencies.push(performance.now() - t0);
          }
        }),
      );
      return latencies;
    };
    await run(500);
    const cpu0 = process.cpuUsage();
    const b0 = await broker.request<{ cpuUs: number }>("stats");
    const latencies = (await run(durationMs)).sort((a, b) => a - b);
    const cpu = process.cpuUsage(cpu0);
    const b1 = await broker.request<{ cpuUs: number }>("stats");
    const n = latencies.length;
    console.log(
      `c=${c}: ${(n / (durationMs / 1000)).toFixed(0)} calls/s, p50 ${percentile(latencies, 0.5).toFixed(2)} p99 ${percentile(latencies, 0.99).toFixed(2)} ms, CPU per call: this process ${((cpu.user + cpu.system) / n).toFixed(0)} us, broker ${((b1.cpuUs - b0.cpuUs) / n).toFixed(0)} us`,
    );
  }
}
