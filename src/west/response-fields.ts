/**
 * The upstream's response headers or trailers, read as Fetch's `Headers` reads them (names
 * lower-cased and checked, values trimmed and checked, entries in name order with repeated
 * names joined by ", ", set-cookie apart) without its cost per call: a `Headers` object,
 * built and then walked with `forEach`, was about 5 % of west's samples at 64 calls in flight.
 */
import type { HeaderField } from "../h2/hpack.ts";

/** Characters a header name may have (RFC 9110 token), by char code. */
const tokenChar = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  tokenChar[c.charCodeAt(0)] = 1;
}

const isHttpWhitespace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

export class InvalidFieldError extends TypeError {}

function checkedName(name: string): string {
  if (name.length === 0) throw new InvalidFieldError("empty header name");
  let lower = true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || tokenChar[c] === 0) {
      throw new InvalidFieldError(`invalid header name ${JSON.stringify(name)}`);
    }
    if (c >= 65 && c <= 90) lower = false;
  }
  return lower ? name : name.toLowerCase();
}

function checkedValue(name: string, value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isHttpWhitespace(value.charCodeAt(start))) start++;
  while (end > start && isHttpWhitespace(value.charCodeAt(end - 1))) end--;
  for (let i = start; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0xff) {
      throw new InvalidFieldError(`invalid value of header ${name}`);
    }
  }
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

export class ResponseFields {
  /** Name, value, name, value…, in arrival order (pseudo-headers left out). */
  private readonly flat: string[];

  private constructor(flat: string[]) {
    this.flat = flat;
  }

  static readonly empty = new ResponseFields([]);

  /** From a decoded header block; pseudo-headers are left out. Throws `InvalidFieldError`. */
  static from(fields: readonly HeaderField[]): ResponseFields {
    const flat: string[] = [];
    for (const [name, value] of fields) {
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const checked = checkedName(name);
      flat.push(checked, checkedValue(checked, value));
    }
    return flat.length === 0 ? ResponseFields.empty : new ResponseFields(flat);
  }

  /** From name/value pairs (tests, and west's own answers); checked like `from`. */
  static of(entries: Record<string, string>): ResponseFields {
    return ResponseFields.from(Object.entries(entries));
  }

  /** The values of `name` (lower-case) joined by ", "; undefined when there is none. */
  get(name: string): string | undefined {
    const flat = this.flat;
    let out: string | undefined;
    for (let i = 0; i < flat.length; i += 2) {
      if (flat[i] !== name) continue;
      const value = flat[i + 1] as string;
      out = out === undefined ? value : `${out}, ${value}`;
    }
    return out;
  }

  has(name: string): boolean {
    const flat = this.flat;
    for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return true;
    return false;
  }

  /** Every field in name order, a repeated name's values joined by ", " (set-cookie apart). */
  entries(): [string, string][] {
    const flat = this.flat;
    const out: [string, string][] = [];
    if (flat.length === 0) return out;
    if (flat.length === 2) {
      out.push([flat[0] as string, flat[1] as string]);
      return out;
    }
    const order: number[] = [];
    for (let i = 0; i < flat.length; i += 2) order.push(i);
    // Stable: equal names keep their arrival order.
    order.sort((a, b) => {
      const x = flat[a] as string;
      const y = flat[b] as string;
      return x < y ? -1 : x > y ? 1 : a - b;
    });
    for (const i of order) {
      const name = flat[i] as string;
      const value = flat[i + 1] as string;
      const last = out[out.length - 1];
      if (last !== undefined && last[0] === name && name !== "set-cookie") {
        last[1] = `${last[1]}, ${value}`;
      } else out.push([name, value]);
    }
    return out;
  }
}
