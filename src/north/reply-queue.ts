/**
 * A call's response messages on their way from the call's push callbacks to a handler's
 * pull loop (the connect-es path). Pushes never block (the reply reader serves every call),
 * so the queue is unbounded; a reply is bounded by what west produced for it.
 */

export interface ReplyQueue<T> {
  push(item: T): void;
  /** Ends the queue normally; items already queued are still read first. */
  close(): void;
  /** Ends the queue with an error; items already queued are still read first. */
  fail(error: unknown): void;
  /** The next item, `undefined` once closed; rejects with the failure once drained. */
  next(): Promise<T | undefined>;
}

interface Waiting<T> {
  resolve: (item: T | undefined) => void;
  reject: (error: unknown) => void;
}

/** An empty queue. */
export function createReplyQueue<T>(): ReplyQueue<T> {
  const items: T[] = [];
  let head = 0;
  let ended: { error: unknown } | undefined;
  let waiting: Waiting<T> | undefined;

  const wake = (): Waiting<T> | undefined => {
    const w = waiting;
    waiting = undefined;
    return w;
  };

  return {
    push(item) {
      if (ended) return;
      const w = wake();
      if (w) w.resolve(item);
      else items.push(item);
    },
    close() {
      if (ended) return;
      ended = { error: undefined };
      wake()?.resolve(undefined);
    },
    fail(error) {
      if (ended) return;
      ended = { error: error ?? new Error("reply failed") };
      wake()?.reject(ended.error);
    },
    next() {
      if (head < items.length) {
        const item = items[head++] as T;
        if (head === items.length) {
          items.length = 0;
          head = 0;
        }
        return Promise.resolve(item);
      }
      if (ended) {
        return ended.error === undefined ? Promise.resolve(undefined) : Promise.reject(ended.error);
      }
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
      });
    },
  };
}
