/**
 * The record keys in flight in a producer's batches, each counted once per batch carrying it:
 * a batch that shares a key with one in flight must wait, so one key's (one call's) records
 * reach Kafka in queue order even when batches overlap and get retried.
 */
export class KeysInFlight {
  private readonly counts = new Map<string, number>();

  /** One more batch in flight carries `key`. */
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** A batch carrying `key` is done. */
  remove(key: string): void {
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left <= 0) this.counts.delete(key);
    else this.counts.set(key, left);
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }
}
