/**
 * One writer of dist/ at a time across test files (vitest runs files in parallel): tsc
 * truncates and rewrites every file it emits, so a Node process starting from dist/ while
 * another file's build rewrites it can read half a module. Whoever builds dist/, or starts
 * Node from a dist/ it may have to build, holds this lock until the process has loaded.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./gateway-process.ts";

const lockDir = join(repoRoot, "node_modules", ".cache", "dist-build.lock");
/** A lock older than this was left by a test process that died: it is taken over. */
const staleMs = 10 * 60_000;

/** Runs `fn` holding the dist/ lock. */
export async function withDistLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(join(lockDir, ".."), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      const age = Date.now() - (statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > staleMs) rmSync(lockDir, { recursive: true, force: true });
      // mkdir is the only atomic test-and-set at hand: poll until the holder removes it.
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
