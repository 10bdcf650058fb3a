/** The results as text tables for the terminal, and as Markdown for bench/README.md. */
import type { BenchResults, PointFigures, ScenarioResult } from "./results.ts";

type Row = string[];

/** Right-aligned columns (the first left-aligned) separated by two spaces. */
export function textTable(head: Row, rows: Row[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: Row) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A GitHub Markdown table, numeric columns right-aligned. */
export function markdownTable(head: Row, rows: Row[]): string {
  const align = head.map((_, i) => (i === 0 ? ":---" : "---:"));
  return [head, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

export function num(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toFixed(digits);
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 2 ** 20) return `${(value / 2 ** 20).toFixed(1)} MiB`;
  if (abs >= 1024) return `${(value / 1024).toFixed(2)} KiB`;
  return `${Math.round(value)} B`;
}

function rate(p: PointFigures | undefined): string {
  return p ? Math.round(p.callsPerS).toString() : "n/a";
}

const scenarioHead: Row = [
  "conc",
  "gw calls/s",
  "gw p50",
  "gw p99",
  "floor calls/s",
  "floor p50",
  "floor p99",
  "native calls/s",
  "native p50",
  "native p99",
  "direct calls/s",
  "direct p50",
  "direct p99",
  "gw÷floor",
  "gw−floor p50",
  "gw÷native",
  "gw CPU s/1k",
  "floor CPU s/1k",
  "native CPU s/1k",
  "failed g/f/n/d",
  "others g/f",
];

function scenarioRows(scenario: ScenarioResult): Row[] {
  return scenario.points.map((p) => [
    String(p.concurrency),
    rate(p.gateway),
    num(p.gateway?.p50Ms, 2),
    num(p.gateway?.p99Ms, 2),
    rate(p.floor),
    num(p.floor?.p50Ms, 2),
    num(p.floor?.p99Ms, 2),
    rate(p.native),
    num(p.native?.p50Ms, 2),
    num(p.native?.p99Ms, 2),
    rate(p.direct),
    num(p.direct?.p50Ms, 2),
    num(p.direct?.p99Ms, 2),
    p.gatewayToFloorCallsRatio === undefined ? "n/a" : `${num(p.gatewayToFloorCallsRatio, 2)}×`,
    p.gatewayP50AddedMs === undefined
      ? "n/a"
      : `${p.gatewayP50AddedMs >= 0 ? "+" : ""}${num(p.gatewayP50AddedMs, 2)}`,
    p.gatewayToNativeCallsRatio === undefined ? "n/a" : `${num(p.gatewayToNativeCallsRatio, 2)}×`,
    num(p.gateway?.cpuSecondsPer1kCalls, 3),
    num(p.floor?.cpuSecondsPer1kCalls, 3),
    num(p.native?.cpuSecondsPer1kCalls, 3),
    [p.gateway, p.floor, p.native, p.direct].map((f) => (f ? String(f.failed) : "-")).join("/"),
    // Cores busy outside the bench in the gateway's and the floor's windows (shared machines).
    [p.gateway, p.floor].map((f) => num(f?.machineOtherCores, 2)).join("/"),
  ]);
}

const targetHead: Row = ["target", "goal", "measured", "result"];
/** A smoke run's windows are too short to judge anything: its figures are shown, not judged. */
const smokeTargetHead: Row = ["target", "goal", "measured (smoke: not judged)"];

function targetTable(results: BenchResults): { head: Row; rows: Row[] } {
  if (results.smoke) {
    return { head: smokeTargetHead, rows: results.targets.map((t) => [t.name, t.goal, t.value]) };
  }
  const rows = results.targets.map((t) => [
    t.name,
    t.goal,
    t.value,
    t.pass === null ? "n/a" : t.pass ? "pass" : "FAIL",
  ]);
  return { head: targetHead, rows };
}

function resourceRows(results: BenchResults): Row[] {
  const g = results.gateway;
  return [
    [
      "gateway spawn → ready (second start)",
      `${num(g.readyMs, 0)} ms (${num(g.secondReadyMs, 0)} ms); in-process ${num(g.readyInProcessMs, 0)} ms`,
    ],
    ["gateway CPU per 1,000 calls (unary 100 B, c=64)", `${num(g.cpuSecondsPer1kCalls, 3)} s`],
    ...pathCpuRows(results),
    [
      "gateway RSS at start / fresh gateway idle (after GC)",
      `${bytes(g.startupRssBytes)} / ${bytes(g.idleRssBytes)}`,
    ],
    ["gateway peak RSS during load", bytes(g.peakRssBytes)],
    [
      `gateway RSS with ${g.pendingCalls} pending calls`,
      `${bytes(g.pendingRssBytes)} (${g.pendingAtUpstream ?? "n/a"} held at the upstream, ${g.pendingAnsweredEarly ?? "n/a"} answered early)`,
    ],
    [
      "memory per pending call: gateway (JS heap part) / echo direct / bare http2 stream",
      `${bytes(g.memoryPerPendingCallBytes)} (${bytes(g.heapPerPendingCallBytes)}) / ${bytes(g.directMemoryPerPendingCallBytes)} / ${bytes(g.http2StreamBytes)}`,
    ],
    ...(g.pendingMemory ?? []).map((m) => [
      `north's memory per pending call at ${m.pendingCalls} pending (JS heap part) / bare http2 stream / ratio`,
      `${bytes(m.northBytesPerCall)} (${bytes(m.northHeapBytesPerCall)}) / ${bytes(m.http2StreamBytes)} / ${num(m.northToHttp2StreamRatio, 2)}×; north RSS ${bytes(m.northIdleRssBytes)} → ${bytes(m.northPendingRssBytes)}, north + west ${bytes(m.gatewayBytesPerCall)}, opened in ${num(m.openMs, 0)} ms, ${m.heldAtUpstream ?? "n/a"} held at the upstream, ${m.answeredEarly ?? "n/a"} answered early`,
    ]),
  ];
}

/**
 * The CPU a call costs along its whole path, at unary 100 B c=64: the gateway's processes,
 * the broker and the upstream against the native floor's requester, responder and broker;
 * and the cores the gateway's path would need to make 0.6× the native floor's calls/s (the
 * issue's target) at its own CPU per call: above the machine's cores, no scheduling reaches it.
 */
function pathCpuRows(results: BenchResults): Row[] {
  const point = results.scenarios
    .find((s) => s.id === "unary-100b")
    ?.points.find((p) => p.concurrency === 64);
  const gateway = point?.gateway;
  const native = point?.native;
  if (!gateway || !native) return [];
  const gParts = [
    gateway.cpuSecondsPer1kCalls,
    gateway.brokerCpuSecondsPer1kCalls,
    gateway.upstreamCpuSecondsPer1kCalls,
  ];
  const nParts = [native.cpuSecondsPer1kCalls, native.brokerCpuSecondsPer1kCalls];
  // A part not measured would make its side's path look cheaper: no row rather than a wrong one.
  const measured = (parts: (number | null | undefined)[]): parts is number[] =>
    parts.every((v) => typeof v === "number" && v > 0);
  if (!measured(gParts) || !measured(nParts)) return [];
  const g = gParts.map((seconds) => seconds * 1000);
  const n = nParts.map((seconds) => seconds * 1000);
  const total = (parts: number[]) => parts.reduce((a, b) => a + b, 0);
  return [
    [
      "CPU per call along the whole path, unary 100 B c=64: gateway (north + west / broker / upstream) / native floor (requester + responder / broker) / native ÷ gateway / cores the gateway's path needs for 0.6× the native floor's calls/s",
      `${num(total(g), 0)} µs (${g.map((v) => num(v, 0)).join(" / ")}) / ${num(total(n), 0)} µs (${n.map((v) => num(v, 0)).join(" / ")}) / ${num(total(n) / total(g), 2)}× / ${num((0.6 * native.callsPerS * total(g)) / 1e6, 2)}`,
    ],
  ];
}

const scaleOutHead: Row = [
  "north instances",
  "mode",
  "calls/s",
  "reply records",
  "fetched",
  "fetched ÷ produced",
];

function scaleOutRows(results: BenchResults): Row[] {
  return (results.scaleOut?.replyRead ?? []).map((p) => [
    String(p.instances),
    p.mode === "all" ? "all (every partition)" : "group (a share each)",
    String(Math.round(p.callsPerS)),
    String(p.replyRecords),
    String(p.recordsFetched),
    num(p.amplification, 2),
  ]);
}

const workersHead: Row = ["workers", "calls/s (median)", "rounds", "machine idle", "failed"];

function workersRows(results: BenchResults): Row[] {
  return (results.scaleOut?.workers ?? []).map((w) => [
    String(w.workers),
    String(Math.round(w.callsPerS)),
    w.roundsCallsPerS.map((v) => Math.round(v)).join(" / "),
    w.idleShare === null ? "n/a" : `${Math.round(w.idleShare * 100)}%`,
    String(w.failed),
  ]);
}

/** The scale-out phase's lines: what it ran on and how loaded the machine was. */
function scaleOutIntro(results: BenchResults): string[] {
  const s = results.scaleOut;
  if (!s) return [];
  return [
    `scale-out: ${s.replyPartitions} reply partitions, unary 100 B at ${s.concurrency} concurrent calls spread over the instances; ${s.caveat}`,
    `load average before / after: ${s.loadAverageBefore.join(" ")} / ${s.loadAverageAfter.join(" ")}; 2 workers ÷ 1 worker: ${num(results.workers2Speedup, 2)}×`,
  ];
}

function intro(results: BenchResults): string[] {
  const m = results.machine;
  const s = results.settings;
  return [
    `${results.smoke ? "SMOKE run (figures not meaningful)" : "Full run"}, ${results.date}, ${results.runtime}, ${m.cores} cores (${m.cpuModel}), ${bytes(m.memoryBytes)}`,
    `load: unary via ${results.loadGenerator.unary}; streaming via ${results.loadGenerator.streaming}; floor via ${results.loadGenerator.floor}${results.loadGenerator.native ? `; native floor via ${results.loadGenerator.native}` : ""}${results.loadGenerator.gateway ? `; gateway as ${results.loadGenerator.gateway}` : ""}`,
    `each point: ${s.warmupMs} ms warm-up, then ${s.durationMs} ms measured${(s.targetRounds ?? 1) > 1 ? ` (every point a target is read from, c ≥ 16 and unary 100 B at 1: ${s.targetRounds} interleaved rounds of floor, native floor and gateway, the median round shown; direct 1 round)` : ""}; ${s.partitions} partitions per topic; latencies in ms`,
    ...(s.settleMs
      ? [
          `each scenario starts with an unmeasured ${s.settleMs} ms run per side at c=64, so that every process's JIT has settled`,
        ]
      : []),
    ...(s.allocatorPurgeDelay !== undefined
      ? [
          `allocator: MIMALLOC_PURGE_DELAY=${s.allocatorPurgeDelay}${s.allocatorPurgeHoles !== undefined ? ` MIMALLOC_PURGE_HOLES=${s.allocatorPurgeHoles}` : ""} in every process (gateway, floors, broker, upstream, load clients)`,
        ]
      : []),
  ];
}

/** Everything, for the terminal. */
export function renderText(results: BenchResults): string {
  const parts = [...intro(results), ""];
  for (const scenario of results.scenarios) {
    parts.push(scenario.title, textTable(scenarioHead, scenarioRows(scenario)), "");
  }
  parts.push(textTable(["resource", "measured"], resourceRows(results)), "");
  if (results.scaleOut) {
    parts.push(...scaleOutIntro(results));
    parts.push(textTable(scaleOutHead, scaleOutRows(results)), "");
    parts.push(textTable(workersHead, workersRows(results)), "");
  }
  const targets = targetTable(results);
  parts.push(textTable(targets.head, targets.rows));
  if (results.problems.length)
    parts.push("", "problems:", ...results.problems.map((p) => `- ${p}`));
  return parts.join("\n");
}

/** Everything, as Markdown sections for the README. */
export function renderMarkdown(results: BenchResults): string {
  const parts = [intro(results).join("  \n"), ""];
  const targets = targetTable(results);
  parts.push("### Targets", "", markdownTable(targets.head, targets.rows), "");
  parts.push(
    "### Resources",
    "",
    markdownTable(["resource", "measured"], resourceRows(results)),
    "",
  );
  if (results.scaleOut) {
    parts.push(
      "### Scale-out",
      "",
      scaleOutIntro(results).join("  \n"),
      "",
      markdownTable(scaleOutHead, scaleOutRows(results)),
      "",
      markdownTable(workersHead, workersRows(results)),
      "",
    );
  }
  for (const scenario of results.scenarios) {
    parts.push(
      `### ${scenario.title}`,
      "",
      markdownTable(scenarioHead, scenarioRows(scenario)),
      "",
    );
  }
  return parts.join("\n");
}
