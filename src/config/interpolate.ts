/**
 * `${{env.NAME}}` expressions, as Zilla resolves them in zilla.yaml. Substitution is done on
 * the parsed tree (not on the text, as Zilla does) so that a value with YAML syntax in it, a
 * password with `: ` or `#`, cannot change the file's structure. A string made this way may
 * still stand for a number (`port: ${{env.PORT}}`): its path is returned in `interpolated`.
 */
import { type ConfigError, childPath } from "./config-error.ts";

export interface Interpolation {
  /** The tree with every resolvable expression substituted. */
  value: unknown;
  errors: ConfigError[];
  /** Paths of strings that contained at least one expression. */
  interpolated: Set<string>;
  /** Paths of strings with an expression that could not be resolved (reported in `errors`). */
  unresolved: Set<string>;
  /** The environment variables each interpolated string was made from, by path. */
  variables: Map<string, string[]>;
}

const expression = /\$\{\{\s*([^\s}]*)\.([^\s}]*)\s*\}\}/g;

/** Substitutes `${{env.NAME}}` in every string of `tree` with `env[NAME]`. */
export function interpolateEnv(
  tree: unknown,
  env: Readonly<Record<string, string | undefined>>,
): Interpolation {
  const result: Interpolation = {
    value: undefined,
    errors: [],
    interpolated: new Set(),
    unresolved: new Set(),
    variables: new Map(),
  };
  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === "string") return substitute(value, path);
    if (Array.isArray(value)) return value.map((v, i) => walk(v, childPath(path, i)));
    if (typeof value === "object" && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, childPath(path, k));
      return out;
    }
    return value;
  };
  const substitute = (text: string, path: string): string => {
    if (!text.includes("${{")) return text;
    let failed = false;
    const names: string[] = [];
    const replaced = text.replace(expression, (whole, namespace: string, name: string) => {
      if (namespace !== "env") {
        failed = true;
        result.errors.push({
          path: path || "(root)",
          message: `unsupported expression ${whole}; only \${{env.NAME}} is supported, write the value or use an environment variable`,
        });
        return whole;
      }
      names.push(name);
      const resolved = env[name];
      if (resolved === undefined) {
        failed = true;
        result.errors.push({
          path: path || "(root)",
          message: `environment variable ${name} is not set; set it, or write the value in place of ${whole}`,
        });
        return whole;
      }
      return resolved;
    });
    if (replaced === text && !failed) return text;
    result.interpolated.add(path);
    if (names.length > 0) result.variables.set(path, names);
    if (failed) result.unresolved.add(path);
    return replaced;
  };
  result.value = walk(tree, "");
  return result;
}
