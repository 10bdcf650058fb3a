/**
 * The record keys in flight in a producer's batches, each counted once per record carrying
 * it: a record whose key is in flight must wait, so one key's (one call's) records reach
 * Kafka in queue order even when batches overlap and get retried.
 */
export class KeysInFlight {
  private readonly counts = new Map<string, number>();

  /** One more record in flight carries `key`. */
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** A record carrying `key` is done (acknowledged, or its batch is over). */
  remove(key: string): void {
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left <= 0) this.counts.delete(key);
    else this.counts.set(key, left);
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  /** How many distinct keys are in flight. */
  get size(): number {
    return this.counts.size;
  }
}
