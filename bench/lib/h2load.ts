/**
 * h2load (nghttp2) as the unary load generator: a gRPC unary call is a POST with
 * content-type application/grpc, te: trailers and a one-frame body. h2load cannot read
 * grpc-status trailers, so a call counts as OK only by its response body: every OK unary
 * echo returns exactly one frame of known size, and an error answer (trailers only) none.
 */
import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import type { LoadRunResult } from "./scenarios.ts";

export interface H2loadSummary {
  started: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status2xx: number;
  /** Response DATA bytes received (bodies only). */
  dataBytes: number;
}

/** `h2load --version`'s text, or undefined when h2load is not installed. */
export function h2loadVersion(): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile("h2load", ["--version"], (err, stdout) => {
      resolve(err ? undefined : stdout.trim().split("\n")[0]);
    });
  });
}

/** Reads the counters off h2load's report. */
export function parseH2loadOutput(text: string): H2loadSummary {
  const requests =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      text,
    );
  const status = /status codes: (\d+) 2xx/.exec(text);
  const traffic = /traffic: .*?, [\d.]+\w* \((\d+)\) data/.exec(text);
  if (!requests || !status || !traffic) throw new Error(`unexpected h2load output:\n${text}`);
  const n = (i: number) => Number(requests[i]);
  return {
    started: n(2),
    done: n(3),
    succeeded: n(4),
    failed: n(5),
    errored: n(6),
    timeout: n(7),
    status2xx: Number(status[1]),
    dataBytes: Number(traffic[1]),
  };
}

/** Latencies (ms) from h2load's --log-file: start µs, HTTP status, duration µs per line. */
export function parseH2loadLog(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    const [, status, micros] = line.split("\t");
    if (status === "200" && micros !== undefined) out.push(Number(micros) / 1000);
  }
  return out;
}

export interface H2loadRun {
  url: string;
  bodyFile: string;
  concurrency: number;
  connections: number;
  durationMs: number;
  /** Where to write the per-request log (removed before and after). */
  logFile?: string;
  /** Size of one OK response body: the 5-byte frame header plus the echoed message. */
  responseBytes: number;
}

/**
 * The profiling tools' run: unary echo calls of `payloadBytes` to 127.0.0.1:`port`, the
 * concurrency spread over min(concurrency, 4) connections as in the benchmark.
 */
export function unaryEchoRun(
  port: number,
  bodyFile: string,
  concurrency: number,
  payloadBytes: number,
): Omit<H2loadRun, "durationMs"> {
  return {
    url: `http://127.0.0.1:${port}/grpc.examples.echo.Echo/UnaryEcho`,
    bodyFile,
    concurrency,
    connections: Math.min(concurrency, 4),
    responseBytes: 5 + payloadBytes,
  };
}

function h2loadArgs(run: H2loadRun, durationMs: number): string[] {
  const streams = Math.max(1, Math.ceil(run.concurrency / run.connections));
  return [
    "-D",
    `${Math.max(1, Math.round(durationMs))}ms`,
    "-c",
    String(run.connections),
    "-m",
    String(streams),
    "-t",
    "1",
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    "-d",
    run.bodyFile,
    ...(run.logFile ? [`--log-file=${run.logFile}`] : []),
    run.url,
  ];
}

function execH2load(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("h2load", args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      if (err) reject(new Error(`h2load failed: ${err.message}\n${stdout}`));
      else resolve(stdout);
    });
  });
}

/**
 * Runs h2load for `durationMs` and returns the measured calls. OK calls are the response
 * bodies received divided by one OK body's size; whatever else finished is a failure.
 */
export async function runH2load(
  run: H2loadRun,
): Promise<LoadRunResult & { h2load: H2loadSummary }> {
  if (run.logFile) await rm(run.logFile, { force: true });
  const stdout = await execH2load(h2loadArgs(run, run.durationMs), run.durationMs + 30_000);
  const summary = parseH2loadOutput(stdout);
  // h2load appends to an existing log file, hence the removal before and after.
  const latencies = run.logFile ? parseH2loadLog(await readFile(run.logFile, "utf8")) : [];
  if (run.logFile) await rm(run.logFile, { force: true });
  const okCalls = Math.min(Math.floor(summary.dataBytes / run.responseBytes), summary.status2xx);
  // h2load's "done" counts every finished request, errored and timed-out ones included.
  const failed = summary.done - okCalls;
  const errors: Record<string, number> = {};
  const broken = summary.errored + summary.timeout;
  const non200 = Math.max(0, summary.done - summary.status2xx - broken);
  if (summary.status2xx > okCalls) {
    errors["HTTP 200 without a reply message (gRPC error)"] = summary.status2xx - okCalls;
  }
  if (non200 > 0) errors["HTTP status other than 200"] = non200;
  if (broken > 0) errors["stream reset, connection error or timeout"] = broken;
  return {
    calls: okCalls,
    failed: Math.max(0, failed),
    errors,
    // Every HTTP 200's latency: h2load cannot tell a gRPC error answer apart per call (the
    // failures are counted above, and any failure is reported as such).
    latenciesMs: latencies,
    windowMs: run.durationMs,
    h2load: summary,
  };
}
