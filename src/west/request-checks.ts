/**
 * What west checks in a request record before it becomes an upstream call (any producer can
 * write the request topic, so nothing in it is trusted): the service and method must be
 * proto names (no path tricks reach the upstream's `:path`), a message must fit the
 * binding's limit, and a deadline must fit a timer.
 */
import { Code } from "@connectrpc/connect";
import { maxTimerMs } from "../grpc/deadline.ts";

/** A refusal: the status west answers with, without calling the upstream. */
export interface Refusal {
  code: Code;
  message: string;
}

// A proto identifier; a full service name is identifiers joined by dots.
const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;
const dottedName = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * UNIMPLEMENTED when `service` is not a dotted proto name or `method` not a proto
 * identifier (what a gRPC server answers for a path it cannot route).
 */
export function checkMethodNames(service: string, method: string): Refusal | undefined {
  if (!dottedName.test(service)) {
    return { code: Code.Unimplemented, message: `service ${quote(service)} is not a proto name` };
  }
  if (!identifier.test(method)) {
    return {
      code: Code.Unimplemented,
      message: `method ${quote(method)} is not a proto method name`,
    };
  }
  return undefined;
}

/** RESOURCE_EXHAUSTED when `bytes` exceed `maxBytes`; `what` names them. */
export function checkRequestBytes(
  bytes: number,
  maxBytes: number,
  what: string,
): Refusal | undefined {
  if (bytes <= maxBytes) return undefined;
  return {
    code: Code.ResourceExhausted,
    message: `${what} of ${bytes} bytes exceeds the limit of ${maxBytes} bytes`,
  };
}

/**
 * A deadline no further than a timer can wait (about 24.8 days): a `zilla:deadline` years
 * away, or a `grpc-timeout` of 600H, would otherwise overflow into one that fires at once.
 */
export function clampDeadlineMs(deadlineMs: number, nowMs: number): number {
  return Math.min(deadlineMs, nowMs + maxTimerMs);
}

/** A name for a message, cut short and with control characters escaped. */
function quote(name: string): string {
  const shown = name.length > 120 ? `${name.slice(0, 120)}…` : name;
  return JSON.stringify(shown);
}
