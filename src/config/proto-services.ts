/**
 * Which services a catalog's .proto names. Only the package and service names are read,
 * with a regular expression: the services themselves (methods, message types) always come
 * from the buf-generated code in gen/, so a proto that was never generated is caught.
 */

/** Full names ("package.Service") of the services declared in proto source text. */
export function protoServiceNames(source: string): string[] {
  const text = stripComments(source);
  const pkg = /(?:^|[;}\s])package\s+([A-Za-z_][\w.]*)\s*;/.exec(text)?.[1];
  const names: string[] = [];
  for (const m of text.matchAll(/(?:^|[;}\s])service\s+([A-Za-z_]\w*)\s*\{/g)) {
    const name = m[1];
    if (name !== undefined) names.push(pkg ? `${pkg}.${name}` : name);
  }
  return names;
}

function stripComments(source: string): string {
  // Strings are kept whole so that "//" inside an option value is not taken for a comment.
  return source.replace(
    /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\/\/[^\n]*|\/\*[\s\S]*?\*\//g,
    (m) => (m.startsWith("/") ? " " : m),
  );
}
