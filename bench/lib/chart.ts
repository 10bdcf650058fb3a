/**
 * The results as one hand-written SVG: per scenario, calls/s against concurrency (left)
 * and p50/p99 latency on a log scale (right), gateway vs the kafkajs floor vs the native
 * floor (the gateway's own Kafka client, no gRPC) vs direct.
 */
import type { BenchResults, ScenarioResult, TargetName } from "./results.ts";
import { targetNames } from "./results.ts";

const colors: Record<TargetName, string> = {
  gateway: "#d1495b",
  floor: "#00798c",
  native: "#edae49",
  direct: "#8d8d8d",
};

const labels: Record<TargetName, string> = {
  gateway: "gateway",
  floor: "floor (plain kafkajs)",
  native: "native floor (own client)",
  direct: "direct (no Kafka)",
};

const panelWidth = 430;
const panelHeight = 200;
const margin = { left: 62, right: 16, top: 34, bottom: 40 };
const cellWidth = margin.left + panelWidth + margin.right;
const cellHeight = margin.top + panelHeight + margin.bottom;
const header = 92;

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmt(n: number): string {
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  if (n >= 1000) return `${(n / 1000).toFixed(1).replace(/\.0$/, "")}k`;
  if (n >= 10 || Number.isInteger(n)) return String(Math.round(n));
  return String(Number(n.toPrecision(2)));
}

/** Round tick steps (1, 2, 5 × 10^k) covering 0..max. */
export function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? power * 10;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** 1-2-5 ticks per decade spanning min..max (both > 0). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks;
}

interface Series {
  target: TargetName;
  dashed: boolean;
  values: (number | undefined)[];
}

function panel(
  x0: number,
  y0: number,
  title: string,
  concurrencies: number[],
  series: Series[],
  scale: "linear" | "log",
  yLabel: string,
): string {
  const values = series
    .flatMap((s) => s.values)
    .filter((v): v is number => v !== undefined && v > 0);
  const out: string[] = [];
  const px = (i: number) =>
    x0 +
    margin.left +
    (concurrencies.length === 1 ? panelWidth / 2 : (i * panelWidth) / (concurrencies.length - 1));
  let ticks: number[];
  let py: (v: number) => number;
  const top = y0 + margin.top;
  const bottom = top + panelHeight;
  if (scale === "linear") {
    ticks = linearTicks(values.length ? Math.max(...values) * 1.08 : 1);
    const max = ticks[ticks.length - 1] ?? 1;
    py = (v) => bottom - (v / max) * panelHeight;
  } else {
    const lo = values.length ? Math.min(...values) : 1;
    const hi = values.length ? Math.max(...values) : 10;
    let lmin = Math.log10(lo / 1.3);
    let lmax = Math.log10(hi * 1.3);
    // At least one decade, so the 1-2-5 ticks have something to label.
    if (lmax - lmin < 1) {
      const mid = (lmax + lmin) / 2;
      lmin = mid - 0.5;
      lmax = mid + 0.5;
    }
    ticks = logTicks(10 ** lmin, 10 ** lmax);
    py = (v) => bottom - ((Math.log10(v) - lmin) / (lmax - lmin || 1)) * panelHeight;
  }
  out.push(
    `<text x="${x0 + margin.left}" y="${y0 + 20}" class="title">${escapeXml(title)}</text>`,
    `<rect x="${x0 + margin.left}" y="${top}" width="${panelWidth}" height="${panelHeight}" class="frame"/>`,
  );
  for (const t of ticks) {
    const y = py(t);
    if (y < top - 0.5 || y > bottom + 0.5) continue;
    out.push(
      `<line x1="${x0 + margin.left}" x2="${x0 + margin.left + panelWidth}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" class="grid"/>`,
      `<text x="${x0 + margin.left - 6}" y="${(y + 4).toFixed(1)}" class="tick" text-anchor="end">${fmt(t)}</text>`,
    );
  }
  concurrencies.forEach((c, i) => {
    out.push(
      `<text x="${px(i).toFixed(1)}" y="${bottom + 16}" class="tick" text-anchor="middle">${c}</text>`,
    );
  });
  out.push(
    `<text x="${x0 + margin.left + panelWidth / 2}" y="${bottom + 32}" class="axis" text-anchor="middle">concurrent calls</text>`,
    `<text transform="translate(${x0 + 14},${top + panelHeight / 2}) rotate(-90)" class="axis" text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );
  for (const s of series) {
    const points = s.values
      .map((v, i) => (v !== undefined && v > 0 && Number.isFinite(v) ? [px(i), py(v)] : undefined))
      .filter((p): p is number[] => p !== undefined);
    if (points.length === 0) continue;
    const d = points
      .map(([x, y], i) => `${i ? "L" : "M"}${x?.toFixed(1)},${y?.toFixed(1)}`)
      .join(" ");
    out.push(
      `<path d="${d}" fill="none" stroke="${colors[s.target]}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    for (const [x, y] of points) {
      out.push(
        s.dashed
          ? `<rect x="${((x ?? 0) - 3).toFixed(1)}" y="${((y ?? 0) - 3).toFixed(1)}" width="6" height="6" fill="white" stroke="${colors[s.target]}" stroke-width="1.5"/>`
          : `<circle cx="${x?.toFixed(1)}" cy="${y?.toFixed(1)}" r="3.2" fill="${colors[s.target]}"/>`,
      );
    }
  }
  return out.join("\n");
}

function scenarioPanels(scenario: ScenarioResult, row: number): string {
  const concurrencies = scenario.points.map((p) => p.concurrency);
  const y0 = header + row * cellHeight;
  const throughput = targetNames.map((target) => ({
    target,
    dashed: false,
    values: scenario.points.map((p) => p[target]?.callsPerS),
  }));
  const latency = targetNames.flatMap((target) => [
    { target, dashed: false, values: scenario.points.map((p) => p[target]?.p50Ms) },
    { target, dashed: true, values: scenario.points.map((p) => p[target]?.p99Ms) },
  ]);
  return [
    panel(0, y0, `${scenario.title}: calls/s`, concurrencies, throughput, "linear", "calls/s"),
    panel(cellWidth, y0, `${scenario.title}: latency`, concurrencies, latency, "log", "ms (log)"),
  ].join("\n");
}

/** The whole chart as SVG text. */
export function renderChart(results: BenchResults): string {
  const width = cellWidth * 2;
  const height = header + results.scenarios.length * cellHeight + 10;
  const legend = targetNames
    .map((t, i) => {
      const x = margin.left + i * 150;
      return `<circle cx="${x}" cy="64" r="5" fill="${colors[t]}"/><text x="${x + 10}" y="68" class="legend">${labels[t]}</text>`;
    })
    .join("\n");
  const m = results.machine;
  const subtitle = `${results.date.slice(0, 19).replace("T", " ")} UTC · ${results.runtime} · ${m.cores} cores · ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB${results.smoke ? " · SMOKE (tiny durations)" : ""}`;
  const styleLegend = `<line x1="${margin.left + 640}" x2="${margin.left + 670}" y1="64" y2="64" stroke="#333" stroke-width="2"/><text x="${margin.left + 676}" y="68" class="legend">p50</text>
<line x1="${margin.left + 720}" x2="${margin.left + 750}" y1="64" y2="64" stroke="#333" stroke-width="2" stroke-dasharray="6 4"/><text x="${margin.left + 756}" y="68" class="legend">p99</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">
<style>
.title { font-size: 14px; font-weight: bold; fill: #222; }
.head { font-size: 18px; font-weight: bold; fill: #111; }
.sub { font-size: 12px; fill: #555; }
.tick { font-size: 11px; fill: #555; }
.axis { font-size: 11px; fill: #333; }
.legend { font-size: 13px; fill: #222; }
.frame { fill: none; stroke: #bbb; }
.grid { stroke: #e6e6e6; }
</style>
<rect width="100%" height="100%" fill="white"/>
<text x="${margin.left}" y="26" class="head">gRPC ⇄ Kafka gateway vs its floors (plain kafkajs; own Kafka client) vs direct (no Kafka)</text>
<text x="${margin.left}" y="44" class="sub">${escapeXml(subtitle)}</text>
${legend}
${styleLegend}
${results.scenarios.map((s, i) => scenarioPanels(s, i)).join("\n")}
</svg>
`;
}
