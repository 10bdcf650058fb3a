/**
 * A group member's heartbeats, on their own timer so that a slow record never costs the
 * membership. One heartbeat at a time; an answer about a generation the member has since
 * left is ignored. A heartbeat that gets no answer, or hears that the coordinator moved,
 * makes the link find the coordinator again and keeps the membership: only an answer that
 * says the membership changed asks for a rejoin.
 */
import { heartbeatApi } from "../client/apis/heartbeat.ts";
import type { CoordinatorLink } from "./coordinator-link.ts";
import type { MemberIdentity } from "./group-join.ts";
import { type MembershipReaction, membershipReaction } from "./membership-reaction.ts";

export interface HeartbeatOptions {
  groupId: string;
  link: CoordinatorLink;
  member: MemberIdentity;
  intervalMs: number;
  /** Whether to send one now (a member between joins has nothing to keep alive). */
  active(): boolean;
  /** An answer about generation `generation` that the reaction applies to. */
  onFailure(error: Error, reaction: MembershipReaction, generation: number): void;
  /** A heartbeat was answered after failures (the coordinator is back). */
  onRecovered(): void;
}

export interface Heartbeats {
  /** When a heartbeat was last answered, or the loop (re)started (ms since the epoch). */
  lastAnsweredAt(): number;
  /** Counts from now, as a fresh join does. */
  restart(): void;
  stop(): void;
}

/** Starts sending heartbeats every `intervalMs` while `active()`. */
export function startHeartbeats(options: HeartbeatOptions): Heartbeats {
  const { link, member } = options;
  let answeredAt = Date.now();
  let sending = false;
  let failing = false;

  const beat = () => {
    if (sending || !options.active() || member.generation < 0) return;
    const generation = member.generation;
    sending = true;
    link
      .call(heartbeatApi, { groupId: options.groupId, generation, memberId: member.memberId })
      .then((answer) => {
        if (answer.error !== 0) throw link.refusal(answer.error, "heartbeat");
        answeredAt = Date.now();
        if (failing) {
          failing = false;
          options.onRecovered();
        }
      })
      .catch((error: Error) => {
        // About a generation the member has since left: nothing to do.
        if (member.generation !== generation) return;
        failing = true;
        options.onFailure(error, membershipReaction(error), generation);
      })
      .finally(() => {
        sending = false;
      });
  };

  const timer = setInterval(beat, options.intervalMs);
  timer.unref?.();
  return {
    lastAnsweredAt: () => answeredAt,
    restart() {
      answeredAt = Date.now();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
