import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSelfSignedCertificate } from "../config/self-signed.ts";
import { certificateFields, createX509Guard } from "./x509-guard.ts";

describe("x509 guard", () => {
  const certificate = new X509Certificate(createSelfSignedCertificate("client-1.example.com").cert);

  it("reads Zilla's certificate fields", () => {
    const fields = certificateFields(certificate);
    expect(fields.get("subject.dn")).toEqual(["cn=client-1.example.com"]);
    expect(fields.get("subject.cn")).toEqual(["client-1.example.com"]);
    expect(fields.get("issuer.cn")).toEqual(["client-1.example.com"]);
    expect(fields.get("san.dns")).toEqual(["client-1.example.com", "localhost"]);
    expect(fields.get("san.ip")).toEqual(["127.0.0.1", "0:0:0:0:0:0:0:1"]);
    expect(fields.get("x5t.s256")?.[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("names the caller and grants roles whose globs match", () => {
    const guard = createX509Guard({
      type: "x509",
      name: "certs",
      identity: "subject.cn",
      attributes: { host: "san.dns" },
      roles: {
        internal: [{ "san.dns": "*.EXAMPLE.com" }],
        partner: [{ "issuer.cn": "Partner CA" }],
      },
    });
    const verdict = guard.verify(certificate);
    expect(verdict).toMatchObject({
      ok: true,
      session: {
        identity: "client-1.example.com",
        roles: ["internal"],
        attributes: { host: "client-1.example.com" },
      },
    });
    expect(verdict.ok && verdict.session.expiresAtMs).toBe(Date.parse(certificate.validTo));
    expect(guard.verify(undefined)).toEqual({ ok: false, reason: "no client certificate" });
  });
});
