/**
 * A self-signed TLS certificate made at start (for the embedded default's TLS port), in
 * plain node:crypto: an EC P-256 key, and an X.509 v3 certificate whose DER is built here
 * and signed with ECDSA-SHA256. Valid for localhost, 127.0.0.1 and ::1.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";

export interface SelfSignedCertificate {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
}

/** A fresh key and a self-signed certificate for `commonName` (plus localhost and loopback). */
export function createSelfSignedCertificate(
  commonName = "localhost",
  opts: { validityDays?: number } = {},
): SelfSignedCertificate {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const now = Date.now();
  // An hour of slack for clocks that are a little behind.
  const notBefore = new Date(now - 60 * 60 * 1000);
  const notAfter = new Date(now + (opts.validityDays ?? 365) * 24 * 60 * 60 * 1000);
  const serial = randomBytes(16);
  // A positive INTEGER in minimal DER: top bit clear, and a first byte that is never 0 (a
  // leading zero byte before one below 0x80 is not DER, and strict parsers refuse the whole
  // certificate — about 1 certificate in 128 before this).
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  const name = seq(set(seq(oid("2.5.4.3"), utf8(commonName))));
  const ecdsaWithSha256 = seq(oid("1.2.840.10045.4.3.2"));

  const dnsNames = [commonName, "localhost"].filter(
    (n, i, all) => isIP(n) === 0 && all.indexOf(n) === i,
  );
  const ips = [commonName, "127.0.0.1", "::1"].filter(
    (n, i, all) => isIP(n) !== 0 && all.indexOf(n) === i,
  );
  const altNames = seq(
    ...dnsNames.map((n) => tlv(0x82, Buffer.from(n, "ascii"))),
    ...ips.map((ip) => tlv(0x87, ipBytes(ip))),
  );
  // The key identifier lets verifiers match issuer and subject without comparing names.
  const publicKeyBits = spki.subarray(spki.length - 65);
  const keyId = createHash("sha1").update(publicKeyBits).digest();
  const extensions = seq(
    extension("2.5.29.19", true, seq()), // basicConstraints: not a CA
    extension("2.5.29.15", true, tlv(0x03, Buffer.from([0x07, 0x80]))), // keyUsage: digitalSignature
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage: serverAuth
    extension("2.5.29.17", false, altNames), // subjectAltName
    extension("2.5.29.14", false, tlv(0x04, keyId)), // subjectKeyIdentifier
  );
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // version v3
    integer(serial),
    ecdsaWithSha256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    Buffer.from(spki),
    tlv(0xa3, extensions),
  );
  const signature = sign("sha256", tbs, privateKey); // DER ECDSA-Sig-Value
  const certificate = seq(
    tbs,
    ecdsaWithSha256,
    tlv(0x03, Buffer.concat([Buffer.from([0]), signature])),
  );
  return {
    cert: pem("CERTIFICATE", certificate),
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function set(...items: Buffer[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

function integer(bytes: Buffer): Buffer {
  return tlv(0x02, bytes);
}

function utf8(text: string): Buffer {
  return tlv(0x0c, Buffer.from(text, "utf8"));
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const out = [first * 40 + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), "ascii"))
    : tlv(0x18, Buffer.from(digits, "ascii"));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  const [head = "", tail = ""] = ip.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = ip.includes("::")
    ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups]
    : ip.split(":");
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
}
