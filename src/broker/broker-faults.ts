/**
 * Fault hooks for tests (programmatic only): injected error codes, added latency, dropped
 * connections and a pause switch. Connections consult `FaultState`; tests hold it as
 * `BrokerFaults`.
 */

/** What tests can do to a running broker. */
export interface BrokerFaults {
  /** The next `count` requests with this API key are answered with `errorCode`. */
  failNext(apiKey: number, count: number, errorCode: number): void;
  /** Delays every response by `ms` (0 turns it off). */
  setLatency(ms: number): void;
  /** Destroys every client socket now. */
  dropConnections(): void;
  /** Stops reading and answering requests until `resume()`. */
  pause(): void;
  resume(): void;
  /**
   * The next batch produced to `topic` is changed by `alter` after it was checked and before
   * it is stored (its base offset is set after): how tests store corrupt batches.
   */
  alterNextBatch(topic: string, alter: (batch: Uint8Array) => void): void;
}

/** Hooks the broker gives the fault state to reach its connections. */
export interface FaultTargets {
  dropConnections(): void;
  /** Called after `paused` changed. */
  pausedChanged(): void;
}

/** The broker's fault state. */
export class FaultState implements BrokerFaults {
  latencyMs = 0;
  paused = false;
  private readonly pending = new Map<number, { count: number; errorCode: number }>();
  private readonly alters = new Map<string, (batch: Uint8Array) => void>();
  private readonly targets: FaultTargets;

  constructor(targets: FaultTargets) {
    this.targets = targets;
  }

  failNext(apiKey: number, count: number, errorCode: number): void {
    if (count <= 0) this.pending.delete(apiKey);
    else this.pending.set(apiKey, { count, errorCode });
  }

  /** The error to inject into this request, if a `failNext` is pending for its API. */
  takeInjectedError(apiKey: number): number | undefined {
    if (this.pending.size === 0) return undefined;
    const entry = this.pending.get(apiKey);
    if (entry === undefined) return undefined;
    if (--entry.count <= 0) this.pending.delete(apiKey);
    return entry.errorCode;
  }

  alterNextBatch(topic: string, alter: (batch: Uint8Array) => void): void {
    this.alters.set(topic, alter);
  }

  /** The change to make to the next batch stored for `topic`, once. */
  takeBatchAlter(topic: string): ((batch: Uint8Array) => void) | undefined {
    if (this.alters.size === 0) return undefined;
    const alter = this.alters.get(topic);
    this.alters.delete(topic);
    return alter;
  }

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  dropConnections(): void {
    this.targets.dropConnections();
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.targets.pausedChanged();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.targets.pausedChanged();
  }
}
