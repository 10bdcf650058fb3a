/**
 * Why a group member cannot serve now, as readiness reports it: joining or rebalancing for
 * longer than the limit, no heartbeat answered for longer than the session timeout, or an
 * assigned partition without a position. A settled member without partitions is ready.
 */

export interface MemberStatus {
  groupId: string;
  /** "stable": consuming; "joining" / "revoking": between assignments. */
  state: "joining" | "stable" | "revoking";
  /** When the member last became, or stopped being, stable (ms since the epoch). */
  stateSince: number;
  /** Why the last join or heartbeat failed. */
  lastProblem: Error | undefined;
  /** When a heartbeat was last answered (ms since the epoch). */
  heartbeatAnsweredAt: number;
  sessionTimeoutMs: number;
  unreadyAfterMs: number;
  /** Assigned partitions without a position, with why. */
  unplaced: readonly { topic: string; partition: number; error: unknown }[];
}

/** The reasons `status` gives for not serving at `now` (empty: ready). */
export function memberUnreadyReasons(status: MemberStatus, now: number): string[] {
  const reasons: string[] = [];
  const since = now - status.stateSince;
  if (status.state !== "stable" && since >= status.unreadyAfterMs) {
    const doing = status.state === "joining" ? "joining" : "rebalancing";
    const why = status.lastProblem ? ` (last problem: ${status.lastProblem.message})` : "";
    reasons.push(`consumer group ${status.groupId} ${doing} for ${seconds(since)} s${why}`);
  }
  const silentMs = now - status.heartbeatAnsweredAt;
  if (status.state === "stable" && silentMs > status.sessionTimeoutMs) {
    reasons.push(
      `consumer group ${status.groupId}: no heartbeat answered for ${seconds(silentMs)} s (the coordinator may have dropped this member)`,
    );
  }
  for (const p of status.unplaced) {
    const error = p.error instanceof Error ? p.error.message : String(p.error);
    reasons.push(`${p.topic}-${p.partition} is assigned but has no position: ${error}`);
  }
  return reasons;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}
