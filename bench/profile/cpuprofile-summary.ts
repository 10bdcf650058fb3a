/**
 * Summarises a .cpuprofile (Chrome/V8 format, as `bun --cpu-prof` and `node --cpu-prof`
 * write): self time by function and by source area (our folders, each package), and the
 * share of idle time.
 *
 *   npx bun bench/profile/cpuprofile-summary.ts FILE.cpuprofile [--top 40]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (!file) throw new Error("usage: cpuprofile-summary.ts FILE.cpuprofile [--top N]");
const topIndex = process.argv.indexOf("--top");
const top = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 40;
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] as number;
  // A sample's time is the delta to the next sample.
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}

/** Our folder (src/north, bench/...) or the package a frame comes from. */
function areaOf(url: string): string {
  if (url === "") return "(native/runtime)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const ours = /\/work\/main\/((?:src|bench|gen)\/[^/]+)/.exec(url);
  if (ours) return ours[1] as string;
  if (url.startsWith("node:") || !url.includes("/")) return `runtime ${url.split("/")[0]}`;
  return url;
}

const byFunction = new Map<string, number>();
const byArea = new Map<string, number>();
let total = 0;
for (const [id, us] of selfUs) {
  const node = byId.get(id);
  if (!node) continue;
  total += us;
  const { functionName, url, lineNumber } = node.callFrame;
  const short = url.replace(/^.*\/(node_modules\/|work\/main\/)/, "");
  const key = `${functionName || "(anonymous)"}  ${short}:${lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const area = ["(idle)", "(program)", "(garbage collector)"].includes(functionName)
    ? functionName
    : areaOf(url);
  byArea.set(area, (byArea.get(area) ?? 0) + us);
}

const print = (title: string, map: Map<string, number>, n: number) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(
      `${((us / total) * 100).toFixed(1).padStart(6)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`,
    );
  }
};
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
print("self time by area", byArea, 30);
print("self time by function", byFunction, top);
