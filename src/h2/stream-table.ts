/**
 * A connection's open streams by id. A client opens its streams in rising id order (HTTP/2
 * says so), so an array kept in that order finds one by binary search: 8 bytes a stream, where
 * a `Map` took about 100 (north holds up to a hundred streams on each of thousands of
 * connections; docs/limits.md, memory per pending call).
 */
export class StreamTable<S extends { readonly id: number }> {
  private items: S[] = [];

  get size(): number {
    return this.items.length;
  }

  get(id: number): S | undefined {
    const at = this.indexOf(id);
    return at < 0 ? undefined : this.items[at];
  }

  /** Adds `stream`, whose id is above every id held (else it is put in its place). */
  add(stream: S): void {
    const items = this.items;
    const last = items[items.length - 1];
    if (last === undefined || last.id < stream.id) {
      items.push(stream);
      return;
    }
    let at = items.length;
    while (at > 0 && (items[at - 1] as S).id > stream.id) at--;
    items.splice(at, 0, stream);
  }

  delete(id: number): boolean {
    const at = this.indexOf(id);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }

  /** The streams held now, by rising id (a copy: the table may change while it is read). */
  values(): S[] {
    return this.items.slice();
  }

  /** Empties the table, returning what it held. */
  takeAll(): S[] {
    const all = this.items;
    this.items = [];
    return all;
  }

  private indexOf(id: number): number {
    const items = this.items;
    let low = 0;
    let high = items.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const at = (items[mid] as S).id;
      if (at === id) return mid;
      if (at < id) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }
}
