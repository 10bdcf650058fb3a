/**
 * One timer for the deadlines of every pending call (north's calls, west's upstream
 * attempts): a min-heap of due times, with the runtime's timer armed for the earliest only.
 * A pending call then holds two numbers instead of a timer object and its argument list
 * (about half a KiB per call under Bun, where calls waiting on Kafka are what north's memory
 * is made of). Calls usually share a timeout, so a new call rarely moves the earliest
 * deadline and re-arms the timer.
 */

/** Something with a deadline in the queue; its two fields belong to the queue. */
export interface Expiring {
  /** When it is due, in `performance.now()` milliseconds. */
  dueMs: number;
  /** Its place in the heap; -1 when not queued. */
  queueIndex: number;
  /** Called once when due (after it left the queue). */
  expire(): void;
}

export interface DeadlineQueue {
  /** Queues `entry` to expire `delayMs` from now (it must not be queued already). */
  add(entry: Expiring, delayMs: number): void;
  /** Takes `entry` out (nothing when it is not queued). */
  remove(entry: Expiring): void;
  readonly size: number;
}

// setTimeout turns anything above 2^31-1 ms into 1 ms: longer waits are re-armed.
const maxTimerMs = 2_147_483_647;

export interface DeadlineQueueOptions {
  /** The clock (default `performance.now()`). */
  now?: () => number;
  /** An entry's expire threw (default: thrown again on its own, as a timer's would be). */
  onError?: (error: unknown) => void;
}

/** A queue with its own timer. */
export function createDeadlineQueue(options: DeadlineQueueOptions = {}): DeadlineQueue {
  const now = options.now ?? (() => performance.now());
  const onError = options.onError ?? rethrowLater;
  const heap: Expiring[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let armedForMs = Number.POSITIVE_INFINITY;

  const place = (entry: Expiring, index: number) => {
    heap[index] = entry;
    entry.queueIndex = index;
  };

  const siftUp = (index: number) => {
    const entry = heap[index] as Expiring;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent] as Expiring;
      if (above.dueMs <= entry.dueMs) break;
      place(above, index);
      index = parent;
    }
    place(entry, index);
  };

  const siftDown = (index: number) => {
    const entry = heap[index] as Expiring;
    const n = heap.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child =
        right < n && (heap[right] as Expiring).dueMs < (heap[left] as Expiring).dueMs
          ? right
          : left;
      const below = heap[child] as Expiring;
      if (below.dueMs >= entry.dueMs) break;
      place(below, index);
      index = child;
    }
    place(entry, index);
  };

  const takeAt = (index: number) => {
    const entry = heap[index] as Expiring;
    const last = heap.pop() as Expiring;
    entry.queueIndex = -1;
    if (last !== entry) {
      place(last, index);
      siftDown(index);
      siftUp(last.queueIndex);
    }
  };

  const arm = () => {
    const first = heap[0];
    if (first === undefined) {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      armedForMs = Number.POSITIVE_INFINITY;
      return;
    }
    // Armed early enough already: the timer finds the entries due when it fires.
    if (timer !== undefined && armedForMs <= first.dueMs) return;
    if (timer !== undefined) clearTimeout(timer);
    armedForMs = first.dueMs;
    timer = setTimeout(fire, Math.min(maxTimerMs, Math.max(0, Math.ceil(first.dueMs - now()))));
  };

  const fire = () => {
    timer = undefined;
    armedForMs = Number.POSITIVE_INFINITY;
    const t = now();
    // Only what was due when the timer fired: entries added while expiring wait their turn.
    while (heap.length > 0 && (heap[0] as Expiring).dueMs <= t) {
      const entry = heap[0] as Expiring;
      takeAt(0);
      try {
        entry.expire();
      } catch (error) {
        // One entry's failure must not keep the others from expiring.
        onError(error);
      }
    }
    arm();
  };

  return {
    add(entry, delayMs) {
      entry.dueMs = now() + Math.max(0, delayMs);
      heap.push(entry);
      siftUp(heap.length - 1);
      arm();
    },
    remove(entry) {
      const index = entry.queueIndex;
      if (index < 0 || heap[index] !== entry) return;
      takeAt(index);
      // An early timer left armed only finds nothing due and re-arms: cheaper than
      // clearing and setting a timer per call that ends.
      if (heap.length === 0) arm();
    },
    get size() {
      return heap.length;
    },
  };
}

function rethrowLater(error: unknown): void {
  setTimeout(() => {
    throw error;
  }, 0);
}

/** The queue every call in this process shares: north's calls and west's upstream attempts. */
export const callDeadlines = createDeadlineQueue();
