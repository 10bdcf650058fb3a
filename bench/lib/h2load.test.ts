import { describe, expect, it } from "vitest";
import { parseH2loadLog, parseH2loadOutput } from "./h2load.ts";

// A real h2load 1.52 report (trimmed to the lines the parser reads and their neighbours).
const report = `finished in 703.23ms, 1245.71 req/s, 166.84KB/s
requests: 872 total, 873 started, 872 done, 872 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 872 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 116.79KB (119590) total, 3.48KB (3559) headers (space savings 95.14%), 89.41KB (91560) data
                     min         max         mean         sd        +/- sd
time for request:     2.49ms     35.25ms     15.11ms      2.44ms    81.01%
`;

describe("parseH2loadOutput", () => {
  it("reads request counters, 2xx count and response data bytes", () => {
    expect(parseH2loadOutput(report)).toEqual({
      started: 873,
      done: 872,
      succeeded: 872,
      failed: 0,
      errored: 0,
      timeout: 0,
      status2xx: 872,
      dataBytes: 91560,
    });
  });

  it("refuses output it does not understand", () => {
    expect(() => parseH2loadOutput("connect failed")).toThrow(/unexpected h2load output/);
  });
});

describe("parseH2loadLog", () => {
  it("turns microsecond durations of HTTP 200 rows into milliseconds", () => {
    const log =
      "1795261720038045\t200\t15305\n1795261720038273\t404\t90\n1795261720038511\t200\t1500\n";
    expect(parseH2loadLog(log)).toEqual([15.305, 1.5]);
  });
});
