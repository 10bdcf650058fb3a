/**
 * What the loader checks in a vault's stores before anything listens: that a PKCS#12
 * keystore opens with its password (so a wrong password fails `gateway validate`, not the
 * first TLS handshake), which key aliases it holds, and which certificates a PEM trust
 * store holds.
 */
import { X509Certificate } from "node:crypto";
import * as tls from "node:tls";

/**
 * Tries the keystore with its password; returns why it cannot be opened, or undefined when
 * it opens (or when the runtime has no way to try it, e.g. no `tls.createSecureContext`).
 */
export function pkcs12OpenProblem(
  pfx: Uint8Array,
  passphrase: string | undefined,
): string | undefined {
  if (typeof tls.createSecureContext !== "function") return undefined;
  try {
    tls.createSecureContext({
      pfx: Buffer.from(pfx),
      ...(passphrase !== undefined ? { passphrase } : {}),
    });
    return undefined;
  } catch (err) {
    return (err as Error).message || String(err);
  }
}

// friendlyName attribute (PKCS#9, 1.2.840.113549.1.9.20) as DER OBJECT IDENTIFIER bytes.
const friendlyNameOid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];

/**
 * The aliases (friendlyName attributes) readable without the password. OpenSSL and keytool
 * write the private key bag's attributes in the clear, so these are the key aliases; an
 * empty result means "unknown", not "none".
 */
export function pkcs12FriendlyNames(der: Uint8Array): string[] {
  const names = new Set<string>();
  outer: for (let i = 0; i + friendlyNameOid.length < der.length; i++) {
    for (let j = 0; j < friendlyNameOid.length; j++) {
      if (der[i + j] !== friendlyNameOid[j]) continue outer;
    }
    let p = i + friendlyNameOid.length;
    // SET OF { BMPString }
    if (der[p] !== 0x31) continue;
    const set = readLength(der, p + 1);
    if (!set) continue;
    p = set.next;
    if (der[p] !== 0x1e) continue;
    const str = readLength(der, p + 1);
    if (!str || str.length % 2 !== 0 || str.next + str.length > der.length) continue;
    let name = "";
    for (let k = 0; k < str.length; k += 2) {
      name += String.fromCharCode(((der[str.next + k] ?? 0) << 8) | (der[str.next + k + 1] ?? 0));
    }
    names.add(name);
  }
  return [...names];
}

function readLength(der: Uint8Array, at: number): { length: number; next: number } | undefined {
  const first = der[at];
  if (first === undefined) return undefined;
  if (first < 0x80) return { length: first, next: at + 1 };
  const count = first & 0x7f;
  if (count === 0 || count > 3) return undefined;
  let length = 0;
  for (let k = 1; k <= count; k++) {
    const b = der[at + k];
    if (b === undefined) return undefined;
    length = (length << 8) | b;
  }
  return { length, next: at + 1 + count };
}

export interface PemCertificate {
  pem: string;
  /** Subject common name, when the certificate has one. */
  commonName?: string;
}

/** The certificates of a PEM bundle, each with its subject CN (the alias used by `trust`). */
export function pemCertificates(text: string): PemCertificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((pem) => {
    let commonName: string | undefined;
    try {
      const subject = new X509Certificate(pem).subject;
      commonName = /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1];
    } catch {
      // An unparsable block is still passed on; TLS will reject it with its own message.
    }
    return commonName === undefined ? { pem } : { pem, commonName };
  });
}
