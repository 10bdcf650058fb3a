import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts", "bench/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Scenario tests start brokers and servers on loopback; files run in parallel forks.
    pool: "forks",
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // Off unless asked for (`vitest run --coverage`, as .ci/run does): measured in the same run
    // as the tests, printed as a summary before the closing line, with no threshold yet.
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/**/*.test.ts", "src/**/*test-kit.ts"],
      reporter: ["text-summary"],
      // The figures also when a test failed (the closing line still says so).
      reportOnFailure: true,
    },
  },
});
