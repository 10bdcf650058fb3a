/**
 * Where a call carries its token (Zilla's http `authorization.<guard>.credentials`): a header
 * pattern such as `Bearer {credentials}`, a query parameter, or a cookie. Looked up in Zilla's
 * order: cookies, then headers, then the query. Also says which request metadata carried the
 * token, so it can be kept out of the Kafka records.
 */
import type { HttpCredentials } from "../config/types.ts";

/** A request as credentials are read from it. */
export interface CredentialSource {
  /** A request header by lower-case name (repeated entries joined with ", "). */
  header(name: string): string | undefined;
  /** The request path with its query string. */
  readonly path: string;
}

export interface CredentialReader {
  /** The token the request carries, or undefined when it carries none where configured. */
  read(request: CredentialSource): string | undefined;
  /** What a client should send, for "missing credentials" messages. */
  readonly expected: string;
  /** Request metadata without the entries that carried the token. */
  withoutCredentials(
    metadata: ReadonlyArray<readonly [string, string]>,
  ): ReadonlyArray<readonly [string, string]>;
}

/** Creates the reader for an authorization's `credentials`. */
export function createCredentialReader(credentials: HttpCredentials): CredentialReader {
  const cookies = Object.entries(credentials.cookies ?? {}).map(([name, pattern]) => ({
    name,
    match: patternMatcher(pattern, "[^;\\s]+"),
  }));
  const headers = Object.entries(credentials.headers ?? {}).map(([name, pattern]) => ({
    name,
    match: patternMatcher(pattern, "\\S+"),
  }));
  const query = Object.entries(credentials.query ?? {}).map(([name, pattern]) => ({
    name,
    match: patternMatcher(pattern, "[^&]+"),
  }));
  const expected = [
    ...Object.entries(credentials.headers ?? {}).map(
      ([name, pattern]) => `header "${name}: ${pattern.replace("{credentials}", "<token>")}"`,
    ),
    ...Object.keys(credentials.query ?? {}).map((name) => `query parameter "${name}"`),
    ...Object.keys(credentials.cookies ?? {}).map((name) => `cookie "${name}"`),
  ].join(" or ");
  const cookieNames = new Set(cookies.map((c) => c.name));
  const headerNames = new Set(headers.map((h) => h.name));

  return {
    expected,
    read(request) {
      if (cookies.length > 0) {
        const jar = parseCookies(request.header("cookie"));
        for (const c of cookies) {
          const value = jar.get(c.name);
          const token = value === undefined ? undefined : c.match(value);
          if (token !== undefined) return token;
        }
      }
      for (const h of headers) {
        const value = request.header(h.name);
        const token = value === undefined ? undefined : h.match(value.trim());
        if (token !== undefined) return token;
      }
      if (query.length > 0) {
        const at = request.path.indexOf("?");
        if (at >= 0) {
          const params = new URLSearchParams(request.path.slice(at + 1));
          for (const q of query) {
            const value = params.get(q.name);
            const token = value === null ? undefined : q.match(value);
            if (token !== undefined) return token;
          }
        }
      }
      return undefined;
    },
    withoutCredentials(metadata) {
      if (headerNames.size === 0 && cookieNames.size === 0) return metadata;
      const out: Array<readonly [string, string]> = [];
      for (const entry of metadata) {
        const name = entry[0].toLowerCase();
        if (headerNames.has(name)) continue;
        if (name === "cookie" && cookieNames.size > 0) {
          const kept = entry[1]
            .split(";")
            .filter((part) => !cookieNames.has(part.split("=", 1)[0]?.trim() ?? ""))
            .join(";")
            .trim();
          if (kept !== "") out.push([entry[0], kept]);
          continue;
        }
        out.push(entry);
      }
      return out;
    },
  };
}

/** A matcher for "prefix{credentials}suffix" that returns the token, or undefined. */
function patternMatcher(pattern: string, token: string): (value: string) => string | undefined {
  const [prefix = "", suffix = ""] = pattern.split("{credentials}");
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/ +/g, "\\s+");
  // The scheme of an Authorization header is case-insensitive (RFC 9110 §11.1).
  const regex = new RegExp(`^${literal(prefix)}(${token})${literal(suffix)}$`, "i");
  return (value) => regex.exec(value)?.[1];
}

function parseCookies(header: string | undefined): Map<string, string> {
  const jar = new Map<string, string>();
  if (!header) return jar;
  for (const part of header.split(/;\s*/)) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!jar.has(name)) jar.set(name, part.slice(eq + 1).trim());
  }
  return jar;
}
