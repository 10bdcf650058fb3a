/**
 * Which reply partitions a north instance owns (docs/scaling.md): `all` (every partition of
 * every reply topic, the default for a single process), `group` (a share handed out by a
 * consumer group of the north instances on the same reply topics), or a fixed list.
 */

/** `all`, `group`, or the partition numbers owned on every reply topic. */
export type ReplyPartitions = "all" | "group" | readonly number[];

/** Parses `--reply-partitions`: all, group, or a list such as `0-3,8`; a string is the error. */
export function parseReplyPartitions(text: string): ReplyPartitions | string {
  const value = text.trim();
  if (value === "all" || value === "group") return value;
  const partitions = new Set<number>();
  for (const part of value.split(",")) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match) {
      return `--reply-partitions: expected all, group or partition numbers such as 0-3,8, got "${text}"`;
    }
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (to < from || to - from > 100_000) {
      return `--reply-partitions: "${part.trim()}" is not a range of partition numbers`;
    }
    for (let p = from; p <= to; p++) partitions.add(p);
  }
  return [...partitions].sort((a, b) => a - b);
}

/** A fixed list shared out among `workers`: worker `index` owns every `workers`-th entry. */
export function workerShare(
  partitions: ReplyPartitions,
  workers: number,
  index: number,
): ReplyPartitions {
  if (typeof partitions === "string" || workers <= 1) return partitions;
  return partitions.filter((_, i) => i % workers === index);
}

/** The consumer group of the north instances that share `binding`'s reply topics. */
export function replyGroupId(namespace: string, binding: string): string {
  return `zilla:${namespace}-${binding}-replies`;
}
