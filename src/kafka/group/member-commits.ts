/**
 * A group member's commits: OffsetCommit under the generation of the moment, sent once
 * more when the coordinator moved, refusals logged at warn with each partition's error
 * name, failures to reach the coordinator logged at warn once per outage. What a failure
 * means for the membership is left to `react`.
 */
import type { Logger } from "../../ops/logger.ts";
import { kafkaCodeName } from "../protocol/errors.ts";
import type { CoordinatorLink } from "./coordinator-link.ts";
import type { MemberIdentity } from "./group-join.ts";
import { type CommitOffset, commitOffsets } from "./group-offsets.ts";
import { type MembershipReaction, membershipReaction } from "./membership-reaction.ts";

export interface CommitterOptions {
  groupId: string;
  link: CoordinatorLink;
  member: MemberIdentity;
  logger: Logger;
  /** Applies a failed commit's reaction, if it is about `generation`. */
  react(reaction: MembershipReaction, generation: number, why: string): void;
  /** A failure's name for logs. */
  errorName(error: unknown): string;
  closed(): boolean;
}

/** Creates the member's commit function. */
export function createCommitter(
  options: CommitterOptions,
): (offsets: readonly CommitOffset[]) => Promise<void> {
  const { groupId, link, member, logger, react, errorName } = options;
  let failing = false;
  return async (offsets) => {
    if (offsets.length === 0 || options.closed()) return;
    const generation = member.generation;
    const ref = { groupId, generation, memberId: member.memberId };
    for (let attempt = 0; ; attempt++) {
      // The coordinator moved or the connection dropped: once more, at the one found now.
      const again = (reaction: MembershipReaction) =>
        reaction === "find-coordinator" && attempt === 0 && !options.closed();
      let answer: Awaited<ReturnType<typeof commitOffsets>>;
      try {
        answer = await commitOffsets(link, ref, offsets);
      } catch (error) {
        const reaction = membershipReaction(error);
        react(reaction, generation, `commit: ${errorName(error)}`);
        if (again(reaction)) continue;
        if (!failing) {
          logger.warn("offset commit failed", { groupId, kafkaError: errorName(error), error });
        }
        failing = true;
        throw error;
      }
      failing = false;
      const refusals = answer.filter((p) => p.error !== 0);
      const first = refusals[0];
      if (!first) return;
      logger.warn("offset commit refused", {
        groupId,
        generation,
        kafkaError: kafkaCodeName(first.error),
        partitions: refusals.map((p) => `${p.topic}-${p.partition}: ${kafkaCodeName(p.error)}`),
      });
      const error = link.refusal(first.error, `commit of ${first.topic}-${first.partition}`);
      const reaction = membershipReaction(error);
      react(reaction, generation, `commit: ${kafkaCodeName(first.error)}`);
      if (again(reaction)) continue;
      throw error;
    }
  };
}
