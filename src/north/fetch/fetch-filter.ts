/**
 * A fetch route's `filters` (docs/contract.md: Fetch) as one predicate over records: OR across the list's
 * items; within an item the `key` and every `headers` entry must match exactly, byte for
 * byte (values are compared as UTF-8 bytes, so no record is matched by a lossy decode).
 */
import type { FetchFilter } from "../../config/types.ts";

/** The parts of a record a filter looks at. */
export interface FilterableRecord {
  key: Uint8Array | null;
  headers: ReadonlyArray<readonly [name: string, value: Uint8Array]>;
}

export type RecordFilter = (record: FilterableRecord) => boolean;

/** A predicate for `filters`; absent or empty filters accept every record. */
export function createRecordFilter(filters: readonly FetchFilter[] | undefined): RecordFilter {
  if (!filters || filters.length === 0) return () => true;
  const compiled = filters.map((filter) => ({
    key: filter.key === undefined ? undefined : utf8.encode(filter.key),
    headers: Object.entries(filter.headers ?? {}).map(
      ([name, value]) => [name, utf8.encode(value)] as const,
    ),
  }));
  return (record) =>
    compiled.some(
      (filter) =>
        (filter.key === undefined || (record.key !== null && bytesEqual(record.key, filter.key))) &&
        filter.headers.every(([name, value]) =>
          // A header may repeat; the filter asks that one of its values is this one.
          record.headers.some(([n, v]) => n === name && bytesEqual(v, value)),
        ),
    );
}

const utf8 = new TextEncoder();

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
