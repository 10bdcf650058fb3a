/**
 * gRPC deadlines on the wire: `grpc-timeout` read and written (PROTOCOL-HTTP2.md: at most
 * 8 digits and a unit), and the clamp every timer needs (a JavaScript timer fires at once
 * when asked for more than about 24.8 days).
 */

const timeoutUnitsMs: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * `grpc-timeout` in milliseconds: undefined when absent, NaN when malformed
 * (at most 8 digits and one unit letter: H, M, S, m, u, n).
 */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return Number.NaN;
  return Number(match[1]) * (timeoutUnitsMs[match[2] as string] as number);
}

/** `grpc-timeout` for a time left: at most 8 digits, so long deadlines use a coarser unit. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  if (whole <= 99_999_999) return `${whole}m`;
  if (whole / 1000 <= 99_999_999) return `${Math.ceil(whole / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(whole / 3_600_000))}H`;
}

/** The longest delay `setTimeout` honours (2^31 − 1 ms); longer ones fire at once. */
export const maxTimerMs = 2 ** 31 - 1;

/** A delay safe to give `setTimeout`: at least 0, at most `maxTimerMs`. */
export function timerDelayMs(ms: number): number {
  return Math.min(maxTimerMs, Math.max(0, ms));
}
