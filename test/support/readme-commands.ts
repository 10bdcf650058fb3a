/**
 * The commands a README gives, read from its text, so that a test can run each one as
 * written and fail when the README drifts: every line of a ```sh block (a trailing `\`
 * joins the next line) and every backticked cell of a table's `command` column.
 */
import { readFileSync } from "node:fs";

/** The commands of the Markdown file at `path`, in the order they appear. */
export function readmeCommands(path: string): string[] {
  return commandsFromMarkdown(readFileSync(path, "utf8"));
}

/** The commands of Markdown `text`: sh block lines and table `command` cells. */
export function commandsFromMarkdown(text: string): string[] {
  const commands: string[] = [];
  const lines = text.split("\n");
  let inSh = false;
  let pending = "";
  let commandColumn: number | undefined;
  for (const line of lines) {
    if (!inSh && line.trim() === "```sh") {
      inSh = true;
      continue;
    }
    if (inSh) {
      if (line.trim() === "```") {
        inSh = false;
        continue;
      }
      const joined = `${pending}${line.trim()}`;
      if (joined.endsWith("\\")) {
        pending = `${joined.slice(0, -1).trimEnd()} `;
        continue;
      }
      pending = "";
      if (joined !== "" && !joined.startsWith("#")) commands.push(joined);
      continue;
    }
    if (!line.startsWith("|")) {
      commandColumn = undefined;
      continue;
    }
    const cells = tableCells(line);
    if (commandColumn === undefined) {
      const index = cells.indexOf("command");
      if (index >= 0) commandColumn = index;
      continue;
    }
    const cell = cells[commandColumn] ?? "";
    if (/^:?-+:?$/.test(cell)) continue;
    for (const match of cell.matchAll(/`([^`]+)`/g)) commands.push(match[1] as string);
  }
  return commands;
}

function tableCells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, "")
    .split("|")
    .map((cell) => cell.trim());
}

/**
 * A simple command line (`NAME=value ... program args`, words separated by spaces, no
 * quoting or shell syntax) as a shell would run it: the variables, the program, its
 * arguments. Throws for anything a shell would have to interpret.
 */
export function simpleCommand(line: string): {
  env: Record<string, string>;
  program: string;
  args: string[];
} {
  if (/["'`$\\|&;<>(){}*?]/.test(line)) throw new Error(`not a simple command: ${line}`);
  const words = line.split(/\s+/).filter(Boolean);
  const env: Record<string, string> = {};
  while (words[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) {
    const word = words.shift() as string;
    const at = word.indexOf("=");
    env[word.slice(0, at)] = word.slice(at + 1);
  }
  const program = words.shift();
  if (program === undefined) throw new Error(`no program in: ${line}`);
  return { env, program, args: words };
}
