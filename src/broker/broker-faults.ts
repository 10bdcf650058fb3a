/**
 * Fault hooks for tests (programmatic only): injected error codes (per request or per
 * partition), answers that name the wrong partition, added latency, dropped connections, a
 * broker that refuses connections for a while, and a pause switch. Connections consult
 * `FaultState`; tests hold it as `BrokerFaults`.
 */

/** What tests can do to a running broker. */
export interface BrokerFaults {
  /** The next `count` requests with this API key are answered with `errorCode`. */
  failNext(apiKey: number, count: number, errorCode: number): void;
  /**
   * The next `count` answers of this API (Produce, ListOffsets) give `errorCode` for
   * `topic`-`partition` and serve its other partitions as usual (0 clears it).
   */
  failPartition(
    apiKey: number,
    topic: string,
    partition: number,
    errorCode: number,
    count?: number,
  ): void;
  /**
   * The next `count` answers of this API (ListOffsets, Fetch) name `topic`-`partition` as
   * partition `answerAs`, as a broken broker would (0 clears it).
   */
  misnamePartition(
    apiKey: number,
    topic: string,
    partition: number,
    answerAs: number,
    count?: number,
  ): void;
  /** Delays every response by `ms` (0 turns it off). */
  setLatency(ms: number): void;
  /** Destroys every client socket now. */
  dropConnections(): void;
  /** Stops listening (connections are refused) and drops every connection, until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Stops reading and answering requests until `resume()`. */
  pause(): void;
  resume(): void;
  /** How many requests with this API key the broker has been sent. */
  requests(apiKey: number): number;
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
  /** Stops accepting connections (and drops those open). */
  stopListening(): Promise<void>;
  /** Accepts connections again on the same port. */
  startListening(): Promise<void>;
}

/** What the per-partition hooks do to one answer. */
export interface PartitionFaults {
  /** The error to answer for this partition, if one is injected. */
  partitionError(topic: string, partition: number): number | undefined;
  /** The partition number to write in the answer for this one. */
  answerPartition(topic: string, partition: number): number;
}

interface CountedFault {
  count: number;
  value: number;
}

/** The broker's fault state. */
export class FaultState implements BrokerFaults {
  latencyMs = 0;
  paused = false;
  private isDown = false;
  private readonly pending = new Map<number, { count: number; errorCode: number }>();
  /** Per API key: "topic\0partition" → fault. */
  private readonly partitionErrors = new Map<number, Map<string, CountedFault>>();
  private readonly misnamed = new Map<number, Map<string, CountedFault>>();
  private readonly counts: number[] = [];
  private readonly alters = new Map<string, (batch: Uint8Array) => void>();
  private readonly targets: FaultTargets;

  constructor(targets: FaultTargets) {
    this.targets = targets;
  }

  failNext(apiKey: number, count: number, errorCode: number): void {
    if (count <= 0) this.pending.delete(apiKey);
    else this.pending.set(apiKey, { count, errorCode });
  }

  failPartition(
    apiKey: number,
    topic: string,
    partition: number,
    errorCode: number,
    count = Number.POSITIVE_INFINITY,
  ): void {
    setCounted(this.partitionErrors, apiKey, topic, partition, errorCode, count);
  }

  misnamePartition(
    apiKey: number,
    topic: string,
    partition: number,
    answerAs: number,
    count = Number.POSITIVE_INFINITY,
  ): void {
    setCounted(this.misnamed, apiKey, topic, partition, answerAs, count);
  }

  /** The error to inject into this request, if a `failNext` is pending for its API. */
  takeInjectedError(apiKey: number): number | undefined {
    this.counts[apiKey] = (this.counts[apiKey] ?? 0) + 1;
    if (this.pending.size === 0) return undefined;
    const entry = this.pending.get(apiKey);
    if (entry === undefined) return undefined;
    if (--entry.count <= 0) this.pending.delete(apiKey);
    return entry.errorCode;
  }

  /** The per-partition hooks for one answer of `apiKey`, if any are set for it. */
  partitionFaults(apiKey: number): PartitionFaults | undefined {
    const errors = this.partitionErrors.get(apiKey);
    const names = this.misnamed.get(apiKey);
    if (!errors && !names) return undefined;
    return {
      partitionError: (topic, partition) => takeCounted(errors, topic, partition),
      answerPartition: (topic, partition) => takeCounted(names, topic, partition) ?? partition,
    };
  }

  requests(apiKey: number): number {
    return this.counts[apiKey] ?? 0;
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

  async down(): Promise<void> {
    if (this.isDown) return;
    this.isDown = true;
    await this.targets.stopListening();
  }

  async up(): Promise<void> {
    if (!this.isDown) return;
    this.isDown = false;
    await this.targets.startListening();
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

function setCounted(
  faults: Map<number, Map<string, CountedFault>>,
  apiKey: number,
  topic: string,
  partition: number,
  value: number,
  count: number,
): void {
  let forApi = faults.get(apiKey);
  if (!forApi) {
    forApi = new Map();
    faults.set(apiKey, forApi);
  }
  const key = `${topic}\0${partition}`;
  if (count <= 0) forApi.delete(key);
  else forApi.set(key, { count, value });
  if (forApi.size === 0) faults.delete(apiKey);
}

function takeCounted(
  forApi: Map<string, CountedFault> | undefined,
  topic: string,
  partition: number,
): number | undefined {
  const key = `${topic}\0${partition}`;
  const entry = forApi?.get(key);
  if (!entry) return undefined;
  if (--entry.count <= 0) forApi?.delete(key);
  return entry.value;
}
