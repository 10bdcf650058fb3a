/**
 * A/B comparison of source trees on a shared, noisy machine: runs stages.ts from each tree
 * in turn (A, B, C, A, B, C, ...) and prints the median and best calls/s and h2load p50/p99
 * per concurrency. Make a tree with e.g. `mkdir /tmp/ab/a && tar -cf - --exclude=./node_modules
 * --exclude=./.git . | tar -xf - -C /tmp/ab/a && ln -s $PWD/node_modules /tmp/ab/a/`, change
 * it, then:
 *
 *   npx bun bench/profile/ab.ts --trees before=/tmp/ab/a,after=/work/main [--rounds 3]
 *     [--concurrency 1,64] [--duration-ms 3000]
 */
import { execFile } from "node:child_process";
import { parseArgs } from "../lib/child-channel.ts";

const args = parseArgs();
const trees = Object.fromEntries(
  (args.get("trees") ?? "").split(",").map((pair) => pair.split("=") as [string, string]),
);
const rounds = Number(args.get("rounds") ?? 3);
const concurrency = args.get("concurrency") ?? "1,64";
const durationMs = args.get("duration-ms") ?? "3000";
if (Object.keys(trees).length < 1 || Object.values(trees).some((d) => !d)) {
  throw new Error("--trees name=dir,name=dir is required");
}

/** `cpuUs`: the gateway's CPU per call (north and west), µs, from stages.ts's busy share. */
type Point = { callsPerS: number; p50: number; p99: number; cpuUs: number };
const results = new Map<string, Point[]>();

function runStages(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [`${dir}/bench/profile/stages.ts`, "--concurrency", concurrency, "--duration-ms", durationMs],
      { cwd: dir, maxBuffer: 4 * 1024 * 1024, timeout: 300_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}

for (let round = 0; round < rounds; round++) {
  for (const [name, dir] of Object.entries(trees) as [string, string][]) {
    const out = await runStages(dir);
    for (const m of out.matchAll(
      /^c=(\d+): (\d+) calls\/s, h2load p50 +([\d.]+) p99 +([\d.]+).*\n.*gateway (\d+)%/gm,
    )) {
      const key = `${name} c=${m[1]}`;
      const list = results.get(key) ?? [];
      const callsPerS = Number(m[2]);
      const cpuUs = ((Number(m[5]) / 100) * 1e6) / callsPerS;
      list.push({ callsPerS, p50: Number(m[3]), p99: Number(m[4]), cpuUs });
      results.set(key, list);
    }
    process.stderr.write(`round ${round + 1} ${name} done\n`);
  }
}

const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] as number;
for (const [key, points] of [...results].sort()) {
  const calls = points.map((p) => p.callsPerS);
  const p50 = points.map((p) => p.p50);
  const p99 = points.map((p) => p.p99);
  const cpu = points.map((p) => p.cpuUs);
  console.log(
    `${key.padEnd(14)} calls/s median ${median(calls)} best ${Math.max(...calls)} | p50 median ${median(p50)} best ${Math.min(...p50)} | p99 median ${median(p99)} | gateway CPU µs/call median ${median(cpu).toFixed(1)}  (${calls.join(" ")})`,
  );
}
