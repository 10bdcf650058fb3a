import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { pemCertificates, pkcs12FriendlyNames, pkcs12OpenProblem } from "./keystore.ts";
import { createSelfSignedCertificate } from "./self-signed.ts";

const keystore = new Uint8Array(
  readFileSync(new URL("../../examples/grpc.kafka.proxy/tls/localhost.p12", import.meta.url)),
);

describe("keystore checks", () => {
  it("opens the example keystore with its password, and says why not with another", () => {
    expect(pkcs12OpenProblem(keystore, "zilla-example")).toBeUndefined();
    expect(pkcs12OpenProblem(keystore, "wrong")).toEqual(expect.any(String));
    expect(pkcs12OpenProblem(new Uint8Array([1, 2, 3]), "x")).toEqual(expect.any(String));
  });

  it("reads the key alias of the example keystore without its password", () => {
    expect(pkcs12FriendlyNames(keystore)).toEqual(["localhost"]);
    expect(pkcs12FriendlyNames(new Uint8Array(64))).toEqual([]);
  });

  it("lists the certificates of a PEM bundle with their common names", () => {
    const a = createSelfSignedCertificate("ca-one").cert;
    const b = createSelfSignedCertificate("ca-two").cert;
    const certs = pemCertificates(`junk\n${a}\n${b}`);
    expect(certs.map((c) => c.commonName)).toEqual(["ca-one", "ca-two"]);
    expect(certs[0]?.pem).toBe(a.trim());
  });
});
