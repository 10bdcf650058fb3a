/**
 * `buf curl`, the gRPC client outside this codebase, with the repository's protos as schema,
 * and the parser of the JSON messages it prints.
 */
import { bin, type CommandResult, run } from "./gateway-process.ts";

/** `buf curl` with the repository's protos as schema; the JSON messages it printed. */
export async function bufCurl(args: string[]): Promise<CommandResult & { messages: unknown[] }> {
  const result = await run(bin("buf"), ["curl", "--schema", "proto", ...args]);
  return { ...result, messages: parseJsonStream(result.stdout) };
}

/** The complete JSON values in a concatenation of pretty-printed JSON documents. */
export function parseJsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  return out;
}
