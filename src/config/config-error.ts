/**
 * A problem found in a zilla.yaml, named by where it is (`bindings.x.routes[0].exit`) and
 * worded so that the message says what to do about it.
 */
export interface ConfigError {
  /** Where: dotted keys and [index] (`bindings.north_grpc_server.routes[0].when[0].method`). */
  path: string;
  /** What is wrong and what to do. */
  message: string;
  /** 1-based position in the file, when the path points at something written there. */
  line?: number;
  column?: number;
}

/** The path of `key` (a mapping key or a list index) under `parent`. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  const plain = /^[A-Za-z0-9_.-]+$/.test(key) ? key : undefined;
  if (plain === undefined) return `${parent}[${JSON.stringify(key)}]`;
  return parent === "" ? plain : `${parent}.${plain}`;
}

/** A short description of a YAML value for "found …" in messages. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
    case "number":
      return `a number (${value})`;
    case "boolean":
      return `a boolean (${value})`;
    case "object":
      return "a mapping";
    default:
      return typeof value;
  }
}

/** The candidate closest to `word` by edit distance, if it is close enough to be a typo. */
export function closestName(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** Edit distance where swapping two neighbouring letters counts as one edit (a typical typo). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}
