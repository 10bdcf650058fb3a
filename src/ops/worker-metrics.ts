/**
 * The metrics of a gateway running as several workers (`gateway start --workers N`): the
 * parent scrapes each worker's Prometheus exposition and serves them as one, every sample
 * labelled with its worker (`worker="0"`, ...). Labelling rather than adding up keeps every
 * metric type right (gauges and histograms do not sum into anything meaningful by name
 * alone); PromQL's `sum without (worker) (...)` gives the host's totals.
 */

/** One worker's exposition, as it answered /metrics. */
export interface WorkerExposition {
  worker: string;
  text: string;
}

interface MergedFamily {
  help: string | undefined;
  type: string | undefined;
  samples: string[];
}

/** One exposition in the text format 0.0.4 with each sample labelled by its worker. */
export function mergeWorkerMetrics(expositions: readonly WorkerExposition[]): string {
  const families = new Map<string, MergedFamily>();
  const familyOf = (name: string): MergedFamily => {
    let family = families.get(name);
    if (!family) {
      family = { help: undefined, type: undefined, samples: [] };
      families.set(name, family);
    }
    return family;
  };
  for (const { worker, text } of expositions) {
    // Samples follow their family's HELP and TYPE lines (histograms add _bucket, _sum, _count).
    let current: MergedFamily | undefined;
    let currentName = "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        const [, kind, name, rest] = meta as unknown as [string, string, string, string];
        current = familyOf(name);
        currentName = name;
        if (kind === "HELP") current.help ??= rest;
        else current.type ??= rest;
        continue;
      }
      if (line.startsWith("#")) continue;
      const name = sampleName(line);
      const family =
        current && name.startsWith(currentName) ? current : familyOf(familyNameOf(name));
      family.samples.push(withWorkerLabel(line, name.length, worker));
    }
  }
  const out: string[] = [];
  for (const [name, family] of families) {
    if (family.help !== undefined) out.push(`# HELP ${name} ${family.help}`);
    if (family.type !== undefined) out.push(`# TYPE ${name} ${family.type}`);
    out.push(...family.samples);
  }
  return out.length > 0 ? `${out.join("\n")}\n` : "";
}

function sampleName(line: string): string {
  const end = line.search(/[{ ]/);
  return end < 0 ? line : line.slice(0, end);
}

/** A sample without a family header: a histogram's parts belong to the histogram. */
function familyNameOf(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, "");
}

/** `name{a="b"} 1` → `name{worker="0",a="b"} 1`; `name 1` → `name{worker="0"} 1`. */
function withWorkerLabel(line: string, nameLength: number, worker: string): string {
  const label = `worker="${worker}"`;
  const name = line.slice(0, nameLength);
  const rest = line.slice(nameLength);
  if (rest.startsWith("{}")) return `${name}{${label}}${rest.slice(2)}`;
  if (rest.startsWith("{")) return `${name}{${label},${rest.slice(1)}`;
  return `${name}{${label}}${rest}`;
}
