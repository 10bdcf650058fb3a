/**
 * How many calls north has open (a stream or HTTP/1.1 response counts until it closes), so
 * that close() waits for responses still being written before it cuts them.
 */
import type http2 from "node:http2";

/** Where a counted stream keeps its counter until it closes. */
const counterOfStream = Symbol("callCounter");
type CountedStream = http2.ServerHttp2Stream & { [counterOfStream]?: CallCounter | undefined };

/**
 * Counts a stream as a call until it closes. A module function as the listener, not a
 * closure per stream: a pending call holds as little as possible.
 */
export function countUntilClosed(stream: CountedStream, calls: CallCounter): void {
  calls.start();
  stream[counterOfStream] = calls;
  stream.on("close", onCountedStreamClose);
}

function onCountedStreamClose(this: CountedStream): void {
  const calls = this[counterOfStream];
  if (!calls) return;
  this[counterOfStream] = undefined;
  calls.finish();
}

export interface CallCounter {
  /** Marks a request started; the returned function marks it finished. */
  begin(): () => void;
  /** Marks a request started; `finish` marks it finished (once per `start`). */
  start(): void;
  finish(): void;
  readonly active: number;
  /** Resolves true once no call is active, or false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean>;
}

/** A counter with nothing open. */
export function createCallCounter(): CallCounter {
  let active = 0;
  const idleWaiters = new Set<() => void>();
  return {
    get active() {
      return active;
    },
    begin() {
      this.start();
      let done = false;
      return () => {
        if (done) return;
        done = true;
        this.finish();
      };
    },
    start() {
      active++;
    },
    finish() {
      active--;
      if (active === 0) for (const wake of [...idleWaiters]) wake();
    },
    idle(timeoutMs) {
      if (active === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          idleWaiters.delete(wake);
          resolve(true);
        };
        const timer = setTimeout(() => {
          idleWaiters.delete(wake);
          resolve(false);
        }, timeoutMs);
        idleWaiters.add(wake);
      });
    },
  };
}
