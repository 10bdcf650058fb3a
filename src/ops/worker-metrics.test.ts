import { describe, expect, test } from "vitest";
import { mergeWorkerMetrics } from "./worker-metrics.ts";

const worker0 = `# HELP calls_total Calls.
# TYPE calls_total counter
calls_total{method="A"} 2
calls_total{method="B"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1
latency_seconds_bucket{le="+Inf"} 2
latency_seconds_sum 0.3
latency_seconds_count 2
# HELP up Up.
# TYPE up gauge
up 1
`;
const worker1 = `# HELP calls_total Calls.
# TYPE calls_total counter
calls_total{method="A"} 5
# HELP only_here Only in worker 1.
# TYPE only_here gauge
only_here{} 7
`;

describe("mergeWorkerMetrics", () => {
  test("labels every sample with its worker and keeps each family together", () => {
    expect(
      mergeWorkerMetrics([
        { worker: "0", text: worker0 },
        { worker: "1", text: worker1 },
      ]),
    ).toBe(`# HELP calls_total Calls.
# TYPE calls_total counter
calls_total{worker="0",method="A"} 2
calls_total{worker="0",method="B"} 1
calls_total{worker="1",method="A"} 5
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{worker="0",le="0.1"} 1
latency_seconds_bucket{worker="0",le="+Inf"} 2
latency_seconds_sum{worker="0"} 0.3
latency_seconds_count{worker="0"} 2
# HELP up Up.
# TYPE up gauge
up{worker="0"} 1
# HELP only_here Only in worker 1.
# TYPE only_here gauge
only_here{worker="1"} 7
`);
  });

  test("a worker that did not answer adds nothing", () => {
    expect(mergeWorkerMetrics([{ worker: "0", text: "" }])).toBe("");
  });
});
