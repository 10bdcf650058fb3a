/**
 * zilla.yaml text → a plain tree, plus where each path was written, so that errors found
 * later (by path) can still point at a line and column.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { type ConfigError, childPath } from "./config-error.ts";

export interface Position {
  line: number;
  column: number;
}

export type YamlSource =
  | { ok: true; value: unknown; positions: Map<string, Position> }
  | { ok: false; errors: ConfigError[] };

/**
 * Parses YAML. A syntax error has an empty path (it is about the text, not a key) and its
 * line and column, which the caller prints once after the file name.
 */
export function parseYamlSource(text: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    // Only the first is reported: one unclosed bracket or bad indent makes the parser trip
    // on every line after it, and those follow-on errors only bury the real one.
    const { line, col } = lineCounter.linePos(first.pos[0]);
    const what = first.code === "DUPLICATE_KEY" ? "duplicate key" : "YAML syntax error";
    // Several checks often trip on the same line: count the other lines.
    const more = new Set(doc.errors.map((e) => lineCounter.linePos(e.pos[0]).line)).size - 1;
    const after = more > 0 ? ` (${more} more after it, often caused by this one)` : "";
    return {
      ok: false,
      errors: [
        {
          path: "",
          message: `${what}: ${first.message}; fix the file at this line${after}`,
          line,
          column: col,
        },
      ],
    };
  }
  const positions = new Map<string, Position>();
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const walk = (node: unknown, path: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const p = childPath(path, key);
        const keyNode = pair.key as Node | null;
        const range = keyNode?.range ?? (pair.value as Node | null)?.range;
        if (range) positions.set(p, at(range[0]));
        walk(pair.value, p);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const p = childPath(path, i);
        const range = (item as Node | null)?.range;
        if (range) positions.set(p, at(range[0]));
        walk(item, p);
      });
    }
  };
  positions.set("", { line: 1, column: 1 });
  walk(doc.contents, "");
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    // Only alias bombs and similar resource limits get here: the syntax was already accepted.
    return {
      ok: false,
      errors: [
        {
          path: "",
          message: `cannot read the YAML: ${(err as Error).message}`,
          line: 1,
          column: 1,
        },
      ],
    };
  }
  return { ok: true, value, positions };
}

/** The position of `path`, or of its nearest written ancestor. */
export function positionOf(positions: Map<string, Position>, path: string): Position | undefined {
  let p = path;
  for (;;) {
    const found = positions.get(p);
    if (found) return found;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) return positions.get("");
    p = p.slice(0, cut);
  }
}
