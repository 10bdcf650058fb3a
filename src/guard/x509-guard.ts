/**
 * Zilla's `x509` guard: names the caller after the TLS client certificate the tls server
 * verified (mutual TLS), and gives it roles by matching certificate fields against globs.
 * The certificate's chain was checked by the TLS handshake against the tls server's `trust`;
 * this guard only reads it.
 */
import { createHash, type X509Certificate } from "node:crypto";
import type { X509GuardConfig } from "../config/types.ts";
import type { Guard, GuardSession, GuardVerdict } from "./guard-session.ts";

export interface X509Guard extends Guard {
  readonly type: "x509";
  /** The session for a verified client certificate (undefined: the client sent none). */
  verify(certificate: X509Certificate | undefined): GuardVerdict;
}

/** Creates an x509 guard from its config. */
export function createX509Guard(config: X509GuardConfig): X509Guard {
  const roles = Object.entries(config.roles).map(([name, matches]) => ({
    name,
    matches: matches.map((m) => Object.entries(m).map(([field, glob]) => [field, globOf(glob)])),
  }));
  return {
    name: config.name,
    type: "x509",
    challengeSeconds: undefined,
    verify(certificate) {
      if (!certificate) return { ok: false, reason: "no client certificate" };
      const fields = certificateFields(certificate);
      const first = (field: string) => fields.get(field)?.[0];
      const attributes: Record<string, string> = {};
      for (const [name, field] of Object.entries(config.attributes)) {
        const value = first(field);
        if (value !== undefined) attributes[name] = value;
      }
      const granted = roles
        .filter((role) =>
          role.matches.some((conditions) =>
            conditions.every(([field, glob]) =>
              (fields.get(field as string) ?? []).some((v) => (glob as RegExp).test(v)),
            ),
          ),
        )
        .map((role) => role.name);
      const session: GuardSession = {
        guard: config.name,
        identity: first(config.identity),
        roles: granted,
        attributes,
        expiresAtMs: Date.parse(certificate.validTo),
      };
      return { ok: true, session };
    },
  };
}

/** `*` any run of characters, `?` one character, case-insensitive, whole value. */
function globOf(glob: string): RegExp {
  const source = glob
    .split("")
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\/-]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`, "i");
}

/**
 * A certificate's fields by Zilla's names: subject.dn and issuer.dn (RFC 2253 order, lower
 * case), subject.<attribute> and issuer.<attribute> (e.g. subject.cn), san.dns, san.email,
 * san.uri, san.ip, and x5t.s256 (base64url SHA-256 of the DER).
 */
export function certificateFields(certificate: X509Certificate): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const add = (field: string, value: string) => {
    const list = fields.get(field);
    if (list) list.push(value);
    else fields.set(field, [value]);
  };
  for (const [prefix, name] of [
    ["subject", certificate.subject],
    ["issuer", certificate.issuer],
  ] as const) {
    const rdns = distinguishedName(name);
    add(`${prefix}.dn`, canonicalName(rdns));
    for (const rdn of rdns) for (const [type, value] of rdn) add(`${prefix}.${type}`, value);
  }
  for (const [type, value] of subjectAltNames(certificate.subjectAltName)) {
    const field = { DNS: "san.dns", email: "san.email", URI: "san.uri", "IP Address": "san.ip" }[
      type
    ];
    if (field) add(field, value);
  }
  add("x5t.s256", createHash("sha256").update(certificate.raw).digest("base64url"));
  return fields;
}

type Rdn = Array<[type: string, value: string]>;

/** Node's multi-line name ("C=US\nO=Acme\nCN=client-1") as RDNs in certificate order. */
function distinguishedName(text: string): Rdn[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) =>
      splitUnescaped(line, "+").map((part) => {
        const eq = part.indexOf("=");
        const type = part.slice(0, eq).trim().toLowerCase();
        return [type, unescapeValue(part.slice(eq + 1).trim())];
      }),
    );
}

/** RFC 2253 order (last RDN first), type=value in lower case, as Zilla's subject.dn reads. */
function canonicalName(rdns: Rdn[]): string {
  return [...rdns]
    .reverse()
    .map((rdn) =>
      rdn
        .map(([type, value]) => `${type}=${escapeValue(value.toLowerCase().replace(/\s+/g, " "))}`)
        .join("+"),
    )
    .join(",");
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "\\" && i + 1 < text.length) {
      current += c + text[++i];
    } else if (c === separator) {
      parts.push(current);
      current = "";
    } else current += c;
  }
  parts.push(current);
  return parts;
}

function unescapeValue(value: string): string {
  return value.replace(/\\([0-9a-fA-F]{2}|.)/g, (_, e: string) =>
    e.length === 2 ? String.fromCharCode(Number.parseInt(e, 16)) : e,
  );
}

function escapeValue(value: string): string {
  return value.replace(/[,+"\\<>;]/g, "\\$&").replace(/^[ #]|[ ]$/g, "\\$&");
}

/** "DNS:a, IP Address:127.0.0.1, URI:..." (Node quotes values holding a comma) as pairs. */
function subjectAltNames(text: string | undefined): Array<[string, string]> {
  if (!text) return [];
  const out: Array<[string, string]> = [];
  const pattern = /(DNS|email|URI|IP Address|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const match of text.matchAll(pattern)) {
    const raw = match[2] as string;
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    out.push([match[1] as string, value]);
  }
  return out;
}
