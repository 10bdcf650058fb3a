/**
 * A throwaway certificate authority for mutual TLS scenarios, made with the openssl command:
 * CAs and the client certificates they sign, as PEM text.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface IssuedCertificate {
  cert: string;
  key: string;
}

/** Makes a CA named `name` (files `<name>.pem`, `<name>.key` in `dir`) with this subject. */
export function createTestCa(dir: string, name: string, subject: string): IssuedCertificate {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    subject,
  ]);
  return read(dir, name);
}

/** A client certificate for `subject`, signed by the CA `ca` made in the same `dir`. */
export function issueClientCertificate(
  dir: string,
  ca: string,
  name: string,
  subject: string,
): IssuedCertificate {
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
  ]);
  return read(dir, name);
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

function read(dir: string, name: string): IssuedCertificate {
  return {
    cert: readFileSync(join(dir, `${name}.pem`), "utf8"),
    key: readFileSync(join(dir, `${name}.key`), "utf8"),
  };
}
