import { describe, expect, it } from "vitest";
import { plainInitialResponse, ScramClient } from "./sasl.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("SASL", () => {
  it("PLAIN sends NUL, user, NUL, password", () => {
    expect([...plainInitialResponse("u", "p")]).toEqual([0, 117, 0, 112]);
  });

  it("SCRAM-SHA-256 matches RFC 7677's example conversation", () => {
    const scram = new ScramClient("scram-sha-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    expect(text(scram.clientFirst())).toBe("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    const final = scram.clientFinal(
      bytes(
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      ),
    );
    expect(text(final)).toBe(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    expect(() =>
      scram.verifyServerFinal(bytes("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")),
    ).not.toThrow();
    expect(() => scram.verifyServerFinal(bytes("v=AAAA"))).toThrow(/signature/);
  });

  it("SCRAM refuses a server nonce that does not extend the client's, and server errors", () => {
    const scram = new ScramClient("scram-sha-512", "a=b,c", "pw", "abc");
    expect(text(scram.clientFirst())).toBe("n,,n=a=3Db=2Cc,r=abc");
    expect(() => scram.clientFinal(bytes("r=xyz,s=AAAA,i=4096"))).toThrow(/nonce/);
    expect(() => scram.clientFinal(bytes("r=abc1,s=AAAA"))).toThrow(/malformed/);
    expect(() => scram.verifyServerFinal(bytes("e=invalid-proof"))).toThrow(/invalid-proof/);
  });
});
