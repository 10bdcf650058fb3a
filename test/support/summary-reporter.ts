/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary,
 * so CI can read the result without parsing vitest's coloured output. With coverage on
 * (`vitest run --coverage`, as .ci/run does) the line waits until the coverage summary is
 * printed, so that it stays the last line.
 */
import type { Reporter, TestModule, Vitest } from "vitest/node";

export default class SummaryReporter implements Reporter {
  private coverageEnabled = false;
  private line: string | undefined;

  onInit(vitest: Vitest): void {
    this.coverageEnabled = vitest.config.coverage.enabled;
  }

  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
  ): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of testModules) {
      let moduleFailed = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") moduleFailed++;
        else skipped++;
      }
      // A file that failed outside its tests (a hook, an import) counts as one failure, even
      // when its tests were only skipped because of it.
      if (module.state() === "failed" && moduleFailed === 0) moduleFailed = 1;
      failed += moduleFailed;
    }
    failed += unhandledErrors.length;
    this.line = `\n${passed} passed, ${failed} failed, ${skipped} skipped\n`;
    if (!this.coverageEnabled) {
      this.printLine();
      return;
    }
    // Should the coverage report itself fail, the line still closes the output.
    process.once("exit", () => this.printLine());
  }

  /** Vitest calls this once the coverage report is printed. */
  onFinishedReportCoverage(): void {
    this.printLine();
  }

  private printLine(): void {
    if (this.line === undefined) return;
    process.stdout.write(this.line);
    this.line = undefined;
  }
}
