/**
 * Token issuers for the guard scenarios: a fresh RS256 or ES256 key pair whose public JWK
 * goes into the gateway's config (or a served JWKS), and a `mint` that signs JWTs with it.
 */
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

export const issuer = "https://auth.example.com";
export const audience = "https://api.example.com";

export interface TestIssuer {
  kid: string;
  alg: "RS256" | "ES256";
  /** The public key, as a config's `keys` entry or a JWKS member. */
  jwk: JWK & { kid: string; kty: string };
  /** Signs a JWT: iss, aud and exp (+60 s) by default; `claims` add or replace claims. */
  mint(claims?: JWTPayload, header?: { kid?: string }): Promise<string>;
}

/** A key pair and a minting function for `alg`, with key id `kid`. */
export async function createTestIssuer(alg: "RS256" | "ES256", kid: string): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg } as TestIssuer["jwk"];
  return {
    kid,
    alg,
    jwk,
    async mint(claims = {}, header = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: JWTPayload = {
        iss: issuer,
        aud: audience,
        iat: now,
        exp: now + 60,
        ...claims,
      };
      return new SignJWT(payload)
        .setProtectedHeader({ alg, kid: header.kid ?? kid, typ: "JWT" })
        .sign(privateKey);
    },
  };
}
