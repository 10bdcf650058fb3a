/**
 * What operators see of an upstream west cannot reach, while it happens: the first failed
 * attempt is logged at warn at once, further ones at most once per `warnIntervalMs` per
 * upstream with how many failed since the last line, and the first success after them at
 * info; `gateway_upstream_up` and `gateway_upstream_connect_failures_total` follow each attempt.
 * Without this, a dead upstream showed only when each call gave up at its deadline.
 */
import type { WestMetrics } from "../ops/gateway-metrics.ts";
import type { Logger } from "../ops/logger.ts";
import type { UpstreamHealth } from "./upstream-pool.ts";

export interface UpstreamHealthOptions {
  logger: Logger;
  metrics?: WestMetrics | undefined;
  /** Least time between two "still unreachable" lines of one upstream (default 10 s). */
  warnIntervalMs?: number;
  now?: () => number;
}

/** Default of `warnIntervalMs`. */
export const defaultUpstreamWarnIntervalMs = 10_000;

/** Gives each upstream (by `host:port`) the health its calls report to. */
export function createUpstreamHealth(
  options: UpstreamHealthOptions,
): (authority: string) => UpstreamHealth {
  const { logger, metrics } = options;
  const intervalMs = options.warnIntervalMs ?? defaultUpstreamWarnIntervalMs;
  const now = options.now ?? Date.now;
  return (authority) => {
    const series = metrics?.upstream(authority);
    /** Since when it has been unreachable (undefined: reachable, or not tried yet). */
    let downSince: number | undefined;
    let lastWarnAt = 0;
    let failuresSinceWarn = 0;
    let failuresWhileDown = 0;
    return {
      unreachable(reason) {
        series?.unreachable();
        failuresSinceWarn++;
        failuresWhileDown++;
        const at = now();
        if (downSince === undefined) {
          downSince = at;
          logger.warn("cannot reach upstream", { upstream: authority, reason, failures: 1 });
        } else if (at - lastWarnAt >= intervalMs) {
          logger.warn("still cannot reach upstream", {
            upstream: authority,
            reason,
            failures: failuresSinceWarn,
            downMs: at - downSince,
          });
        } else return;
        lastWarnAt = at;
        failuresSinceWarn = 0;
      },
      reached() {
        series?.reached();
        if (downSince === undefined) return;
        logger.info("upstream reachable again", {
          upstream: authority,
          downMs: now() - downSince,
          failures: failuresWhileDown,
        });
        downSince = undefined;
        failuresSinceWarn = 0;
        failuresWhileDown = 0;
      },
    };
  };
}
