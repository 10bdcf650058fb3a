import { childPath } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  type Ref,
  readBoolean,
  readChoice,
  readInteger,
  readListOf,
  readMapping,
  readName,
  readOptional,
  readStringList,
  refs,
  report,
} from "./decode.ts";
import type { AccessControl, TlsVersion } from "./types.ts";

// ---------------------------------------------------------------------------------------
// tcp

/** tcp `options`: host and port(s); a client connects to one port. */
export function decodeTcpOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): { host?: string; ports?: number[] } {
  if (value === undefined) return {};
  const m = readMapping(ctx, value, path, {
    keys: ["host", "port"],
    required: kind === "server" ? ["port"] : [],
    hints: { port: "add the port (a number, a list, or a range such as 7151-7153)" },
  });
  if (!m) return {};
  const out: { host?: string; ports?: number[] } = {};
  readOptional(ctx, m, path, "host", readName, out, "host");
  if (has(m, "port")) {
    const portPath = childPath(path, "port");
    if (kind === "client") {
      const port = readInteger(ctx, m.port, portPath, { min: 1, max: 65535 });
      if (port !== undefined) out.ports = [port];
    } else {
      const ports = readPorts(ctx, m.port, portPath);
      if (ports) {
        const seen = new Set<number>();
        for (const port of ports) {
          if (seen.has(port) && port !== 0) {
            report(ctx, portPath, `port ${port} is listed more than once; list it once`);
          }
          seen.add(port);
        }
        out.ports = ports;
      }
    }
  }
  if (kind === "client" && has(m, "host") !== has(m, "port")) {
    report(ctx, path, "a tcp client needs both host and port, or neither; add the missing one");
  }
  return out;
}

const maxPortRange = 1024;

/** A port, a "7151-7153" range, or a list of either, as Zilla's tcp binding accepts. */
export function readPorts(ctx: DecodeContext, value: unknown, path: string): number[] | undefined {
  if (Array.isArray(value)) {
    const out: number[] = [];
    value.forEach((v, i) => {
      const ports = readPortItem(ctx, v, childPath(path, i));
      if (ports) out.push(...ports);
    });
    return out;
  }
  return readPortItem(ctx, value, path);
}

function readPortItem(ctx: DecodeContext, value: unknown, path: string): number[] | undefined {
  if (ctx.unresolved.has(path)) return undefined;
  if (typeof value === "string") {
    const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value);
    if (range) {
      const from = Number(range[1]);
      const to = Number(range[2]);
      if (from > to || to > 65535 || from < 1) {
        return report(
          ctx,
          path,
          `"${value}" is not a valid port range; write it as low-high within 1-65535`,
        );
      }
      if (to - from + 1 > maxPortRange) {
        return report(
          ctx,
          path,
          `"${value}" spans more than ${maxPortRange} ports; list fewer ports`,
        );
      }
      return Array.from({ length: to - from + 1 }, (_, i) => from + i);
    }
    if (/^\s*\d+\s*$/.test(value)) {
      const port = Number(value);
      if (port > 65535) return report(ctx, path, `must be between 0 and 65535, found ${port}`);
      return [port];
    }
    return report(
      ctx,
      path,
      `must be a port number or a range such as 7151-7153, found "${value}"`,
    );
  }
  const port = readInteger(ctx, value, path, { min: 0, max: 65535 });
  return port === undefined ? undefined : [port];
}

/** A tcp route condition: the port(s) it takes. */
export function decodeTcpWhen(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): { ports?: number[] } | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["port"],
    unsupported: {
      cidr: 'routing by "cidr" is not supported by this gateway; remove it (and filter addresses in front of the gateway)',
      authority: 'routing by "authority" on tcp is not supported by this gateway; route by port',
    },
  });
  if (!m) return undefined;
  if (!has(m, "port")) return {};
  const ports = readPorts(ctx, m.port, childPath(path, "port"));
  return ports ? { ports } : undefined;
}

/** The ports a tcp route takes; absent = any port. */
export function portsOfWhen(when: Array<{ ports?: number[] }>): { ports?: number[] } {
  if (when.length === 0 || when.some((w) => w.ports === undefined)) return {};
  return { ports: when.flatMap((w) => w.ports ?? []) };
}

// ---------------------------------------------------------------------------------------
// tls

export const tlsWhenUnsupported: Record<string, string> = Object.fromEntries(
  ["authority", "alpn", "port", "trust", "mutual"].map((k) => [
    k,
    `tls routing by "${k}" is not supported by this gateway; use options.sni / options.alpn and a single exit`,
  ]),
);

/** tls `options`: vault key and trust aliases, sni, alpn; on a server, client certificates and the lowest version. */
export function decodeTlsOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): {
  keys?: Ref[];
  trust?: Ref[];
  trustcacerts?: boolean;
  mutual?: "required" | "requested" | "none";
  sni?: string[];
  alpn?: string[];
  version?: TlsVersion;
} {
  if (value === undefined) return {};
  const serverOnly = kind === "server";
  const m = readMapping(ctx, value, path, {
    keys: serverOnly
      ? ["keys", "trust", "mutual", "sni", "alpn", "authorization", "version"]
      : ["keys", "trust", "trustcacerts", "sni", "alpn"],
    required: serverOnly ? ["keys"] : [],
    unsupported: {
      ...(serverOnly
        ? {}
        : {
            version:
              'choosing the TLS "version" of a tls client is not supported by this gateway; remove it (TLS 1.2 and 1.3 are accepted)',
          }),
      signers: 'tls "signers" are not supported by this gateway; use "keys"',
      ...(serverOnly
        ? {
            trustcacerts:
              'a tls server trusts only the CAs listed under "trust" for client certificates; remove trustcacerts',
          }
        : {
            mutual: 'a tls client takes no "mutual"; give it "keys" for a client certificate',
            authorization:
              'a tls client takes no "authorization"; put it on the tls server that reads client certificates',
          }),
    },
    hints: { keys: "add the aliases of the server keys in the vault, e.g. [localhost]" },
  });
  if (!m) return {};
  const out: ReturnType<typeof decodeTlsOptions> = {};
  readOptional(ctx, m, path, "keys", refs, out, "keys");
  readOptional(ctx, m, path, "trust", refs, out, "trust");
  readOptional(ctx, m, path, "trustcacerts", readBoolean, out, "trustcacerts");
  if (has(m, "sni")) {
    const sni = readStringList(ctx, m.sni, childPath(path, "sni"));
    if (sni) out.sni = sni;
    if (sni && kind === "client" && sni.length > 1) {
      report(ctx, childPath(path, "sni"), "a tls client sends one server name; list one");
    }
  }
  readOptional(ctx, m, path, "alpn", readStringList, out, "alpn");
  // The lowest version accepted: TLSv1.2 takes 1.2 and 1.3, TLSv1.3 takes 1.3 only.
  readOptional(
    ctx,
    m,
    path,
    "version",
    (c, v, p) => readChoice<TlsVersion>(c, v, p, ["TLSv1.2", "TLSv1.3"]),
    out,
    "version",
  );
  if (has(m, "mutual")) {
    const mp = childPath(path, "mutual");
    const mutual = readChoice(ctx, m.mutual, mp, ["required", "requested", "none"] as const);
    if (mutual !== undefined) out.mutual = mutual;
    if (mutual === "none" && out.trust?.length) {
      report(
        ctx,
        mp,
        'mutual: none asks for no client certificate, so "trust" would go unused; remove one of them',
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// http

const httpVersions = ["http/1.1", "h2"] as const;

/** http `options`: versions (default both) and, on a server, access-control. */
export function decodeHttpOptions(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  kind: "server" | "client",
): { versions: string[]; accessControl?: AccessControl } {
  const defaults = { versions: [...httpVersions] as string[] };
  if (value === undefined) return defaults;
  const unsupported: Record<string, string> = {
    overrides: 'http header "overrides" are not supported by this gateway; remove them',
    requests: 'http "requests" validation is not supported by this gateway; remove it',
  };
  if (kind === "client") {
    unsupported["access-control"] = 'an http client takes no "access-control"; remove it';
    unsupported.authorization =
      'an http client takes no "authorization"; credentials for the upstream travel as request metadata';
  }
  const m = readMapping(ctx, value, path, {
    keys: kind === "server" ? ["versions", "access-control", "authorization"] : ["versions"],
    unsupported,
  });
  if (!m) return defaults;
  const out: { versions: string[]; accessControl?: AccessControl } = { ...defaults };
  if (has(m, "versions")) {
    const versions = readListOf(ctx, m.versions, childPath(path, "versions"), (v, p) =>
      readChoice(ctx, v, p, httpVersions),
    );
    if (versions) out.versions = versions;
  }
  readOptional(ctx, m, path, "access-control", decodeAccessControl, out, "accessControl");
  return out;
}

function decodeAccessControl(
  ctx: DecodeContext,
  value: unknown,
  path: string,
): AccessControl | undefined {
  const m = readMapping(ctx, value, path, { keys: ["policy", "allow", "max-age", "expose"] });
  if (!m) return undefined;
  const policy = has(m, "policy")
    ? readChoice(ctx, m.policy, childPath(path, "policy"), ["same-origin", "cross-origin"] as const)
    : "same-origin";
  if (policy === undefined) return undefined;
  const ac: AccessControl = { policy };
  if (policy === "same-origin") {
    for (const key of ["allow", "max-age", "expose"]) {
      if (has(m, key)) {
        report(
          ctx,
          childPath(path, key),
          `"${key}" applies only to policy: cross-origin; remove it or set policy: cross-origin`,
        );
      }
    }
    return ac;
  }
  if (has(m, "allow")) {
    const ap = childPath(path, "allow");
    const a = readMapping(ctx, m.allow, ap, {
      keys: ["origins", "methods", "headers", "credentials"],
    });
    if (a) {
      const allow: NonNullable<AccessControl["allow"]> = {};
      for (const key of ["origins", "methods", "headers"] as const) {
        if (!has(a, key)) continue;
        const list = readStringList(ctx, a[key], childPath(ap, key));
        if (list) allow[key] = list;
      }
      readOptional(ctx, a, ap, "credentials", readBoolean, allow, "credentials");
      ac.allow = allow;
    }
  }
  readOptional(
    ctx,
    m,
    path,
    "max-age",
    (c, v, p) => readInteger(c, v, p, { min: 0 }),
    ac,
    "maxAgeSeconds",
  );
  if (has(m, "expose")) {
    const ep = childPath(path, "expose");
    const e = readMapping(ctx, m.expose, ep, { keys: ["headers"] });
    if (e) {
      ac.expose = {};
      if (has(e, "headers")) {
        const headers = readStringList(ctx, e.headers, childPath(ep, "headers"));
        if (headers) ac.expose.headers = headers;
      }
    }
  }
  return ac;
}
