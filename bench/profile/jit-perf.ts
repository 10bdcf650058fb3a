/**
 * Where a Bun process's main thread spends its time, JIT frames named: `perf` samples the
 * whole machine (kernel and native code included, which a JS profiler does not see) and this
 * names each JIT frame from JSC's JIT dump at the sample's time. A sample whose leaf is native
 * (bun.exe has no symbols) or kernel code is charged to the nearest JS function above it too,
 * so "[bun] <- request" is runtime code that `request` called.
 *
 *   mkdir -p /tmp/jit && perf record -a -k 1 -g -F 499 -o /tmp/jit/perf.data &   # first
 *   BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=/tmp/jit \
 *     npx bun bench/profile/split-cpu.ts --concurrency 64 --duration-ms 30000
 *   kill -INT %1; perf script -i /tmp/jit/perf.data -F pid,tid,time,ip,dso > /tmp/jit/script.txt
 *   npx bun bench/profile/jit-perf.ts --dir /tmp/jit --script /tmp/jit/script.txt --pid <PID>
 *
 * `--clock 1` (`-k 1`, CLOCK_MONOTONIC) makes perf's sample times comparable with the dump's.
 * The dump files are named jit-<tid>-<pid>.dump; the bench's west is north's child process.
 * The dump costs the profiled processes about a fifth of their calls/s.
 */
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "../lib/child-channel.ts";
import { type CodeLoad, codeNamer, parseJitDump } from "../lib/jitdump.ts";

const args = parseArgs();
const dir = args.get("dir") ?? "/tmp/jit";
const script = args.get("script") ?? `${dir}/script.txt`;
const pid = Number(args.get("pid"));
const top = Number(args.get("top") ?? 40);
if (!Number.isInteger(pid) || pid <= 0) throw new Error("--pid <the process to report> is needed");

const loads: CodeLoad[] = [];
for (const file of readdirSync(dir).filter((n) => n.startsWith("jit-") && n.endsWith(".dump"))) {
  const parsed = parseJitDump(readFileSync(`${dir}/${file}`));
  if (parsed.pid === pid) loads.push(...parsed.loads);
}
if (loads.length === 0) throw new Error(`no JIT dump of process ${pid} in ${dir}`);
const nameAt = codeNamer(loads);

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let samples = 0;
const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

for (const block of readFileSync(script, "utf8").split("\n\n")) {
  const lines = block.split("\n").filter((l) => l.trim() !== "");
  const head = lines[0]?.trim().split(/\s+/);
  if (!head || head.length < 2) continue;
  const [p, t] = (head[0] as string).split("/").map(Number);
  if (p !== pid || t !== pid) continue;
  const atNs = Math.round(Number((head[1] as string).replace(":", "")) * 1e9);
  samples++;
  const frames = lines.slice(1).map((line) => {
    const [ip = "0", ...rest] = line.trim().split(/\s+/);
    const where = rest.join(" ");
    if (where.includes("bun.exe")) return "[bun]";
    if (where.includes("kernel")) return "[kernel]";
    if (where.includes("libc")) return "[libc]";
    return nameAt(Number.parseInt(ip, 16), atNs)?.replace(/#[A-Za-z0-9]+$/, "") ?? "[unknown]";
  });
  const leaf = frames[0] ?? "[unknown]";
  const js = frames.find((f) => !f.startsWith("["));
  add(self, leaf.startsWith("[") ? `${leaf} <- ${js ?? "(no JS caller)"}` : leaf);
  for (const frame of new Set(frames)) add(inclusive, frame);
}

const table = (map: Map<string, number>) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => `${((100 * n) / samples).toFixed(1).padStart(6)}%  ${name}`)
    .join("\n");
console.log(`process ${pid}, main thread: ${samples} samples, ${loads.length} JIT code loads`);
console.log(`\nself (native and kernel leaves with their nearest JS caller)\n${table(self)}`);
console.log(`\ninclusive (a function anywhere on the stack)\n${table(inclusive)}`);
