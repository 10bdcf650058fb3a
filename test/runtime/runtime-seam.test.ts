/**
 * src/runtime/ on each runtime: runtime-seam-probe.ts runs its functions under Node (compiled
 * by TypeScript into a temporary folder, as Node 20 does not run .ts), Bun and Deno, and each
 * must answer for itself: its name, whether its TLS server verifies client certificates,
 * repository files from the sources and from the build, an unref'd timer that does not keep
 * the process alive, an HTTP/2 server whose streams end and trail through the batching
 * seam with the widened windows announced and applied, and the backpressure seam's view of
 * a 4 MiB answer its client does not read (what the edge guard's write-buffer cap counts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectionWindowBytes, streamWindowBytes } from "../../src/runtime/http2-windows.ts";
import { bin, repoRoot, run } from "../support/gateway-process.ts";

type Runtime = "node" | "bun" | "deno";

const probe = "test/runtime/runtime-seam-probe.ts";
/** Everything the probe imports, compiled for Node. */
const probeSources = [
  probe,
  "src/runtime/runtime.ts",
  "src/runtime/http2-windows.ts",
  "src/runtime/http2-batching.ts",
  "src/runtime/http2-backpressure.ts",
];

let nodeDir: string;

beforeAll(() => {
  nodeDir = mkdtempSync(join(tmpdir(), "runtime-seam-"));
  writeFileSync(join(nodeDir, "package.json"), '{ "type": "module" }\n');
  for (const source of probeSources) {
    const { outputText } = ts.transpileModule(readFileSync(join(repoRoot, source), "utf8"), {
      fileName: source,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        rewriteRelativeImportExtensions: true,
        verbatimModuleSyntax: true,
      },
    });
    const out = join(nodeDir, source.replace(/\.ts$/, ".js"));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
});

afterAll(() => {
  if (nodeDir) rmSync(nodeDir, { recursive: true, force: true });
});

function probeCommand(runtime: Runtime, mode: string[]): [string, string[]] {
  switch (runtime) {
    case "node":
      return [process.execPath, [join(nodeDir, probe.replace(/\.ts$/, ".js")), ...mode]];
    case "bun":
      return [bin("bun"), [probe, ...mode]];
    case "deno":
      return [bin("deno"), ["run", "-A", "--sloppy-imports", probe, ...mode]];
  }
}

async function runProbe(runtime: Runtime, mode: string[] = []) {
  const [command, args] = probeCommand(runtime, mode);
  const started = Date.now();
  const result = await run(command, args, {
    env: { REPOSITORY_ROOT: repoRoot },
    timeoutMs: 20_000,
  });
  return { ...result, elapsedMs: Date.now() - started };
}

const runtimes: Runtime[] = ["node", "bun", "deno"];

describe("the runtime seam on each runtime", () => {
  test.each(runtimes)("runtime.seam.%s", { timeout: 30_000 }, async (runtime) => {
    const result = await runProbe(runtime);
    expect(result.code, result.stderr).toBe(0);
    const answers = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "");

    expect(answers.runtimeName).toBe(runtime);
    expect(answers.runtimeDescription).toMatch(new RegExp(`^${runtime} \\d+\\.\\d+\\.\\d+`));
    // Deno's TLS server accepts a `ca` for client certificates but verifies nothing against it.
    expect(answers.verifiesClientCertificates).toBe(runtime !== "deno");

    const packageJson = join(repoRoot, "package.json");
    expect(answers.repositoryFile).toEqual({
      fromSource: packageJson,
      // Node runs dist/src/…, one folder deeper: the file is found one level further up.
      fromBuild: packageJson,
      // Nothing found: the sources' candidate, so that the error names a sensible path.
      missing: join(repoRoot, "no/such/file"),
    });

    const { http2 } = answers;
    // Every stream ended through endSoon and trailed through sendTrailersSoon.
    expect(http2.calls).toEqual(
      ["/a", "/b", "/c"].map((path) => ({
        status: 200,
        body: `answer to ${path}`,
        trailers: { "x-status": "0", "x-path": path },
      })),
    );
    // The client announced the larger stream window in its SETTINGS ...
    expect(http2.remoteInitialWindowSize).toBe(streamWindowBytes);
    // ... and widened its connection window (less what the answers used up, on Deno). Bun's
    // session.state is no measure of it: it reports 16 MiB or, a round trip later, the stream
    // window of the SETTINGS; either is far past HTTP/2's default of 64 KiB.
    if (runtime === "bun") {
      expect(http2.clientLocalWindowSize).toBeGreaterThanOrEqual(streamWindowBytes);
    } else {
      expect(http2.clientLocalWindowSize).toBeGreaterThan(connectionWindowBytes - 1024);
    }
    expect(http2.clientLocalWindowSize).toBeLessThanOrEqual(connectionWindowBytes);

    // A client that does not read: flow control lets out about one window (64 KiB), and the
    // seam accounts for every byte not yet written (stream buffer plus, on Bun, the session's
    // own queue, counted as whole frames) ...
    const unread = 4 * 1024 * 1024;
    const { backpressure } = answers;
    expect(backpressure.writtenWhileUnread).toBeGreaterThan(0);
    expect(backpressure.writtenWhileUnread).toBeLessThan(1024 * 1024);
    expect(backpressure.held).toBeGreaterThanOrEqual(unread - backpressure.writtenWhileUnread);
    expect(backpressure.held).toBeLessThanOrEqual(unread + 512 * 1024);
    // Bun 1.4 keeps frames of its own on the session (9 here); the others keep none there.
    if (runtime === "bun") expect(backpressure.queued).toBeGreaterThan(0);
    else expect(backpressure.queued).toBe(0);
    // ... and once it reads, the session's written bytes pass the whole answer.
    expect(backpressure.received).toBe(unread);
    expect(backpressure.writtenAfterRead).toBeGreaterThanOrEqual(unread);
  });

  test.each(runtimes)("runtime.unref.timer.%s", { timeout: 30_000 }, async (runtime) => {
    // The probe arms a 60 s timer through unrefTimer and a 100 ms one that is not.
    const result = await runProbe(runtime, ["unref"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("kept timer fired");
    expect(result.stdout).not.toContain("unref timer fired");
    // Exited on its own, long before the unref'd timer (the run would be killed at 20 s).
    expect(result.elapsedMs).toBeLessThan(20_000);
  });
});
