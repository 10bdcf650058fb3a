/**
 * Readiness: the gateway takes calls only when every part it waits for says so (each north
 * reply reader positioned, each west consumer group assigned), Kafka answers, and it is not
 * shutting down. Parts register before they start, so `/readyz` is 503 from the first moment
 * the ops port is up until the last part is ready. A ready part can still say, at any check,
 * why it cannot serve now (`watch`): a group member rebalancing for too long, a partition
 * without a position; several units of one part may each watch.
 */

export interface ReadinessPart {
  /** The part can serve. */
  ready(): void;
  /** The part cannot serve (starting again, failed); `reason` is shown by /readyz. */
  unready(reason: string): void;
  /**
   * Adds reasons asked for on every check, for states that come and go (empty: nothing
   * wrong now); each is shown by /readyz as "<part>: <reason>". Returns a function that
   * removes them.
   */
  watch(reasons: () => readonly string[]): () => void;
  /** The part is gone (stopped for good or replaced): it no longer counts. */
  remove(): void;
}

export interface ReadinessReport {
  ready: boolean;
  /** One line per thing that is not ready; empty when ready. */
  reasons: string[];
}

export interface Readiness {
  /** A part that must be ready; it starts out "starting". */
  expect(name: string): ReadinessPart;
  /**
   * Sets the check that Kafka answers; it runs at most once at a time and its result is
   * kept for `cacheMs`. A check that takes longer than the probe timeout counts as a failure.
   */
  setKafkaProbe(probe: (() => Promise<void>) | undefined): void;
  /** From now on the gateway is shutting down: never ready again. */
  closing(): void;
  /** The state now, with the last Kafka check (for synchronous callers, e.g. gRPC health). */
  snapshot(): ReadinessReport;
  /** The state with a fresh Kafka check (for /readyz). */
  check(): Promise<ReadinessReport>;
}

export interface ReadinessOptions {
  /** How long a Kafka check result is reused (default 1000 ms). */
  cacheMs?: number;
  /** How long /readyz waits for a Kafka check (default 2000 ms). */
  probeTimeoutMs?: number;
}

/** Creates the readiness state of one gateway. */
export function createReadiness(options: ReadinessOptions = {}): Readiness {
  const cacheMs = options.cacheMs ?? 1_000;
  const probeTimeoutMs = options.probeTimeoutMs ?? 2_000;
  const parts = new Map<
    number,
    { name: string; reason: string | undefined; watches: Set<() => readonly string[]> }
  >();
  let nextId = 0;
  let shuttingDown = false;
  let probe: (() => Promise<void>) | undefined;
  let kafkaError: string | undefined;
  let checkedAt = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;

  const snapshot = (): ReadinessReport => {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push("shutting down");
    for (const part of parts.values()) {
      if (part.reason !== undefined) reasons.push(`${part.name}: ${part.reason}`);
      for (const watch of part.watches) {
        for (const reason of watchedReasons(watch)) reasons.push(`${part.name}: ${reason}`);
      }
    }
    if (probe && kafkaError !== undefined) reasons.push(`kafka: ${kafkaError}`);
    return { ready: reasons.length === 0, reasons };
  };

  const runProbe = (current: () => Promise<void>): Promise<void> => {
    running ??= current()
      .then(
        () => {
          kafkaError = undefined;
        },
        (error: unknown) => {
          kafkaError = error instanceof Error ? error.message : String(error);
        },
      )
      .finally(() => {
        checkedAt = Date.now();
        running = undefined;
      });
    return running;
  };

  return {
    expect(name) {
      const id = nextId++;
      parts.set(id, { name, reason: "starting", watches: new Set() });
      return {
        ready() {
          const part = parts.get(id);
          if (part) part.reason = undefined;
        },
        unready(reason) {
          const part = parts.get(id);
          if (part) part.reason = reason;
        },
        watch(reasons) {
          parts.get(id)?.watches.add(reasons);
          return () => {
            parts.get(id)?.watches.delete(reasons);
          };
        },
        remove() {
          parts.delete(id);
        },
      };
    },
    setKafkaProbe(next) {
      probe = next;
      kafkaError = undefined;
      checkedAt = Number.NEGATIVE_INFINITY;
    },
    closing() {
      shuttingDown = true;
    },
    snapshot,
    async check() {
      const current = probe;
      // Parts not ready decide on their own; no need to ask Kafka then.
      if (current && snapshot().ready && Date.now() - checkedAt >= cacheMs) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), probeTimeoutMs);
        });
        const outcome = await Promise.race([runProbe(current), timedOut]);
        clearTimeout(timer);
        if (outcome === "timeout") kafkaError = `no answer within ${probeTimeoutMs} ms`;
      }
      return snapshot();
    },
  };
}

/** A watch's reasons; one that throws says so rather than taking readiness down. */
function watchedReasons(watch: () => readonly string[]): readonly string[] {
  try {
    return watch();
  } catch (error) {
    return [`readiness check failed: ${error instanceof Error ? error.message : String(error)}`];
  }
}
