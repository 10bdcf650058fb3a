import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts", "bench/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Scenario tests start brokers and servers on loopback; files run in parallel forks.
    pool: "forks",
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
