import { createPrivateKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { connect, createSecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { createSelfSignedCertificate } from "./self-signed.ts";

describe("createSelfSignedCertificate", () => {
  it("makes a certificate Node parses, for localhost and the loopback addresses", () => {
    const { cert, key } = createSelfSignedCertificate();
    const x509 = new X509Certificate(cert);
    expect(x509.subject).toBe("CN=localhost");
    expect(x509.issuer).toBe("CN=localhost");
    expect(x509.checkHost("localhost")).toBeTruthy();
    expect(x509.checkIP("127.0.0.1")).toBeTruthy();
    expect(x509.checkIP("::1")).toBeTruthy();
    expect(x509.checkHost("example.com")).toBeUndefined();
    expect(x509.subjectAltName).toBe(
      "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    expect(x509.ca).toBe(false);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(Date.parse(x509.validFrom)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(x509.validTo)).toBeGreaterThan(Date.now() + 300 * 24 * 3600 * 1000);
    expect(key).toContain("-----BEGIN PRIVATE KEY-----");
    expect(x509.checkPrivateKey(createPrivateKey(key))).toBe(true);
  });

  it("always writes a DER serial number strict parsers accept (a random one used to fail 1 in 128)", () => {
    for (let i = 0; i < 600; i++) {
      const serial = new X509Certificate(createSelfSignedCertificate("x").cert).serialNumber;
      expect(serial).toMatch(/^[0-7][0-9A-F]{31}$/);
      expect(serial.startsWith("00")).toBe(false);
    }
  });

  it("names another host too, and makes a fresh key each time", () => {
    const a = createSelfSignedCertificate("gateway.test", { validityDays: 2 });
    const b = createSelfSignedCertificate("gateway.test");
    const x509 = new X509Certificate(a.cert);
    expect(x509.checkHost("gateway.test")).toBeTruthy();
    expect(x509.checkHost("localhost")).toBeTruthy();
    expect(Date.parse(x509.validTo)).toBeLessThan(Date.now() + 3 * 24 * 3600 * 1000);
    expect(a.key).not.toBe(b.key);
    expect(x509.serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
  });

  it("completes an HTTP/2 TLS handshake with a client that trusts it", async () => {
    const { cert, key } = createSelfSignedCertificate("localhost");
    const server = createSecureServer({ cert, key, allowHTTP1: false }, (_req, res) => {
      res.end("ok");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const client = connect(`https://127.0.0.1:${port}`, { ca: [cert], servername: "localhost" });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        client.once("error", reject);
        const req = client.request({ ":path": "/" });
        let data = "";
        req.setEncoding("utf8");
        req.on("data", (chunk: string) => {
          data += chunk;
        });
        req.once("end", () => resolve(data));
        req.once("error", reject);
        req.end();
      });
      expect(body).toBe("ok");
      expect(client.alpnProtocol).toBe("h2");
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("is refused by a client that does not trust it", async () => {
    const { cert, key } = createSelfSignedCertificate("localhost");
    const server = createSecureServer({ cert, key });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const client = connect(`https://127.0.0.1:${port}`, { servername: "localhost" });
    try {
      const [err] = (await once(client, "error")) as [NodeJS.ErrnoException];
      expect(err.code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
