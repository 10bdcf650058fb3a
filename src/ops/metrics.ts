/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format 0.0.4. Label sets are resolved once into children (`labels(...)`)
 * that callers keep, so recording on the hot path is a number update: no label strings are
 * built and nothing is allocated per observation.
 */

/** The content type of the text exposition format. */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

export interface CounterChild {
  inc(by?: number): void;
  readonly value: number;
}

export interface GaugeChild {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
  readonly value: number;
}

export interface HistogramChild {
  observe(value: number): void;
  readonly count: number;
  readonly sum: number;
}

/** A metric family; `labels` takes one value per label name, in order. */
export interface Family<Child> {
  readonly name: string;
  labels(...values: string[]): Child;
  /** Forgets one label set (a component that is gone). */
  remove(...values: string[]): void;
}

export interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; +Inf is added. */
  buckets: readonly number[];
}

/** Runs before each exposition, to copy live state into gauges. */
export type Collector = () => void | Promise<void>;

export interface MetricsRegistry {
  counter(options: MetricOptions): Family<CounterChild>;
  gauge(options: MetricOptions): Family<GaugeChild>;
  histogram(options: HistogramOptions): Family<HistogramChild>;
  /** Adds a collector; the returned function removes it. */
  addCollector(collector: Collector): () => void;
  /** Runs the collectors, then renders every family. */
  expose(): Promise<string>;
}

/** Buckets for call durations, seconds. */
export const durationBuckets: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Buckets for message sizes, bytes. */
export const sizeBuckets: readonly number[] = [
  0, 64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304,
];
/** Buckets for messages per call. */
export const countBuckets: readonly number[] = [0, 1, 2, 4, 8, 16, 64, 256, 1024];

// A collector that hangs (an unreachable cluster) must not hold the scrape.
const defaultCollectorTimeoutMs = 2_000;

type Kind = "counter" | "gauge" | "histogram";

interface FamilyState {
  name: string;
  help: string;
  kind: Kind;
  labelNames: readonly string[];
  /** Rendered `{a="x",b="y"}` per label set, by the values joined with \u0000. */
  children: Map<string, { labels: string; child: ChildState }>;
  buckets?: readonly number[];
}

type ChildState = NumberChild | HistogramState;

class NumberChild implements CounterChild, GaugeChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  set(value: number): void {
    this.value = value;
  }
}

class HistogramState implements HistogramChild {
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  count = 0;
  sum = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sum += value;
  }
}

/** Creates an empty registry (one per gateway; there is no global default). */
export function createMetricsRegistry(
  options: { collectorTimeoutMs?: number } = {},
): MetricsRegistry {
  const collectorTimeoutMs = options.collectorTimeoutMs ?? defaultCollectorTimeoutMs;
  const families = new Map<string, FamilyState>();
  const collectors = new Set<Collector>();

  const define = <Child>(
    options: MetricOptions,
    kind: Kind,
    make: () => ChildState,
    buckets?: readonly number[],
  ): Family<Child> => {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(options.name)) {
      throw new Error(`invalid metric name "${options.name}"`);
    }
    const existing = families.get(options.name);
    if (existing && existing.kind !== kind) {
      throw new Error(`metric ${options.name} is already a ${existing.kind}`);
    }
    const labelNames = options.labelNames ?? [];
    const state: FamilyState = existing ?? {
      name: options.name,
      help: options.help,
      kind,
      labelNames,
      children: new Map(),
      ...(buckets ? { buckets } : {}),
    };
    families.set(options.name, state);
    const keyOf = (values: string[]): string => {
      if (values.length !== state.labelNames.length) {
        throw new Error(
          `metric ${state.name} takes ${state.labelNames.length} label values, got ${values.length}`,
        );
      }
      return values.join("\u0000");
    };
    return {
      name: state.name,
      labels(...values) {
        const key = keyOf(values);
        let entry = state.children.get(key);
        if (!entry) {
          entry = { labels: renderLabels(state.labelNames, values), child: make() };
          state.children.set(key, entry);
        }
        return entry.child as Child;
      },
      remove(...values) {
        state.children.delete(keyOf(values));
      },
    };
  };

  return {
    counter: (options) => define<CounterChild>(options, "counter", () => new NumberChild()),
    gauge: (options) => define<GaugeChild>(options, "gauge", () => new NumberChild()),
    histogram: (options) => {
      const bounds = [...options.buckets].sort((a, b) => a - b);
      return define<HistogramChild>(options, "histogram", () => new HistogramState(bounds), bounds);
    },
    addCollector(collector) {
      collectors.add(collector);
      return () => collectors.delete(collector);
    },
    async expose() {
      await Promise.all([...collectors].map((c) => runCollector(c, collectorTimeoutMs)));
      const out: string[] = [];
      for (const family of families.values()) renderFamily(family, out);
      return out.join("");
    },
  };
}

async function runCollector(collector: Collector, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      collector(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
  } catch {
    // A failed collector leaves its gauges at their last values; the scrape still answers.
  } finally {
    clearTimeout(timer);
  }
}

function renderFamily(family: FamilyState, out: string[]): void {
  if (family.children.size === 0) return;
  out.push(`# HELP ${family.name} ${escapeHelp(family.help)}\n`);
  out.push(`# TYPE ${family.name} ${family.kind}\n`);
  for (const { labels, child } of family.children.values()) {
    if (child instanceof HistogramState) {
      let cumulative = 0;
      for (let i = 0; i <= child.bounds.length; i++) {
        cumulative += child.counts[i] as number;
        const le = i < child.bounds.length ? formatNumber(child.bounds[i] as number) : "+Inf";
        out.push(
          `${family.name}_bucket${withLabel(labels, "le", le)} ${formatNumber(cumulative)}\n`,
        );
      }
      out.push(`${family.name}_sum${labels} ${formatNumber(child.sum)}\n`);
      out.push(`${family.name}_count${labels} ${formatNumber(child.count)}\n`);
    } else {
      out.push(`${family.name}${labels} ${formatNumber(child.value)}\n`);
    }
  }
}

function renderLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((n, i) => `${n}="${escapeLabelValue(values[i] as string)}"`).join(",")}}`;
}

/** Adds one label to rendered labels (`{a="x"}` or ``). */
function withLabel(labels: string, name: string, value: string): string {
  const pair = `${name}="${value}"`;
  return labels === "" ? `{${pair}}` : `${labels.slice(0, -1)},${pair}}`;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value as the format writes it (Go's float formatting for the special values). */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
