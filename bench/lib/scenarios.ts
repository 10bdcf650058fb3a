/** The benchmark's scenarios: what one call is, shared by every load generator and the floor. */

export type ScenarioKind = "unary" | "server-stream" | "bidi";

export interface Scenario {
  id: string;
  title: string;
  kind: ScenarioKind;
  /** Size of each request (and echoed reply) message, protobuf bytes. */
  payloadBytes: number;
}

/** Replies per server-streaming call (the echo upstream's default count). */
export const serverStreamReplies = 10;
/** Messages each way in a bidi call, sent one at a time, each after the previous echo. */
export const bidiMessages = 10;

export const scenarios: readonly Scenario[] = [
  { id: "unary-100b", title: "unary echo, 100 B", kind: "unary", payloadBytes: 100 },
  { id: "unary-10kib", title: "unary echo, 10 KiB", kind: "unary", payloadBytes: 10 * 1024 },
  {
    id: "server-stream",
    title: `server streaming, ${serverStreamReplies} replies`,
    kind: "server-stream",
    payloadBytes: 100,
  },
  { id: "bidi", title: `bidi, ${bidiMessages} messages each way`, kind: "bidi", payloadBytes: 100 },
];

/** The echo method a scenario calls. */
export function methodOf(kind: ScenarioKind): string {
  switch (kind) {
    case "unary":
      return "UnaryEcho";
    case "server-stream":
      return "ServerStreamingEcho";
    case "bidi":
      return "BidirectionalStreamingEcho";
  }
}

/** What a load generator process reports for one run. */
export interface LoadRunResult {
  /** Calls that completed OK inside the measured window. */
  calls: number;
  /** Calls that failed inside the measured window. */
  failed: number;
  /** Distinct failure texts with counts (first few). */
  errors: Record<string, number>;
  /** Latency of each OK call in the window, milliseconds. */
  latenciesMs: number[];
  /** Length of the measured window, milliseconds. */
  windowMs: number;
}

/** A load run as the harness asks a load process for it. */
export interface LoadRunRequest {
  scenario: Scenario;
  concurrency: number;
  /** Connections this process opens; the concurrency is spread over them. */
  connections: number;
  warmupMs: number;
  durationMs: number;
}

/** Counts an error text into a bounded map. */
export function countError(errors: Record<string, number>, text: string): void {
  const key = text.slice(0, 200);
  if (key in errors || Object.keys(errors).length < 8) errors[key] = (errors[key] ?? 0) + 1;
}

/** How much longer a window may stay open waiting for its first completed call. */
const maxWindowExtensionMs = 10_000;

/**
 * Runs `call` in `concurrency` loops for warm-up plus duration, measuring the latter. A
 * window in which no call finished at all (calls slower than a short smoke window) stays
 * open until one does, for at most 10 s more; `windowMs` says how long it really was.
 */
export async function runClosedLoop(
  request: Pick<LoadRunRequest, "concurrency" | "warmupMs" | "durationMs">,
  call: (worker: number) => Promise<void>,
): Promise<LoadRunResult> {
  const start = performance.now();
  const measureFrom = start + request.warmupMs;
  let endAt = measureFrom + request.durationMs;
  const latestEnd = endAt + maxWindowExtensionMs;
  const result: LoadRunResult = {
    calls: 0,
    failed: 0,
    errors: {},
    latenciesMs: [],
    windowMs: request.durationMs,
  };
  const nothingYet = () => result.calls === 0 && result.failed === 0;
  /** Whether a call finishing at `t` is measured; the first one may stretch the window. */
  const measured = (t: number) => {
    if (t < measureFrom) return false;
    if (t <= endAt) return true;
    if (!nothingYet() || t > latestEnd) return false;
    endAt = t;
    result.windowMs = endAt - measureFrom;
    return true;
  };
  const open = () => {
    const now = performance.now();
    return now < endAt || (nothingYet() && now < latestEnd);
  };
  const worker = async (index: number) => {
    while (open()) {
      const t0 = performance.now();
      try {
        await call(index);
        const t1 = performance.now();
        if (measured(t1)) {
          result.calls++;
          result.latenciesMs.push(Math.round((t1 - t0) * 1000) / 1000);
        }
      } catch (err) {
        if (measured(performance.now())) {
          result.failed++;
          countError(result.errors, err instanceof Error ? err.message : String(err));
        }
        // A failing target must not turn the loop into a busy spin.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  };
  await Promise.all(Array.from({ length: request.concurrency }, (_, i) => worker(i)));
  return result;
}
