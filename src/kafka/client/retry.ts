/** How the client waits between attempts, and which failures another attempt may cure. */
import { KafkaConnectionError, KafkaProtocolError } from "../protocol/errors.ts";

/** 100 ms doubling to 2 s, with jitter so instances do not retry in step. */
export function backoff(attempt: number): number {
  const base = Math.min(2_000, 100 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether another attempt may cure `error`: no answer, a broken answer, or a retriable code. */
export function isRetriable(error: unknown): boolean {
  return (
    error instanceof KafkaConnectionError ||
    (error instanceof KafkaProtocolError && error.retriable)
  );
}

/**
 * `work`, or a KafkaConnectionError saying `what` once `deadlineMs` has passed (the work
 * itself goes on; its result is dropped).
 */
export function withDeadline<T>(work: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  const waitMs = deadlineMs - Date.now();
  if (waitMs <= 0) {
    work.catch(() => {});
    return Promise.reject(new KafkaConnectionError(`${what}: no time left`));
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new KafkaConnectionError(`${what}: no answer within ${waitMs} ms`)),
      waitMs,
    );
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
