import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ScramClient } from "../kafka/client/sasl.ts";
import {
  createScramCredential,
  type ScramCredential,
  ScramError,
  type ScramHash,
  ScramServerExchange,
} from "./scram-server.ts";

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function lookupFor(hash: ScramHash, users: Record<string, string>) {
  const credentials = new Map<string, ScramCredential>();
  for (const [name, password] of Object.entries(users)) {
    credentials.set(name, createScramCredential(hash, password));
  }
  return (name: string) => credentials.get(name);
}

/** Runs a whole conversation between our client and the server; throws where either refuses. */
function converse(
  mechanism: "scram-sha-256" | "scram-sha-512",
  users: Record<string, string>,
  username: string,
  password: string,
): string {
  const hash = mechanism === "scram-sha-256" ? "sha256" : "sha512";
  const server = new ScramServerExchange(hash, lookupFor(hash, users));
  const client = new ScramClient(mechanism, username, password);
  const serverFirst = server.serverFirst(client.clientFirst());
  const serverFinal = server.serverFinal(client.clientFinal(serverFirst));
  client.verifyServerFinal(serverFinal);
  return server.username;
}

describe("ScramServerExchange", () => {
  it("reproduces the SCRAM-SHA-256 exchange of RFC 7677 section 3", () => {
    const salt = Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64");
    const credential = createScramCredential("sha256", "pencil", salt, 4096);
    const server = new ScramServerExchange(
      "sha256",
      (name) => (name === "user" ? credential : undefined),
      "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    );
    const serverFirst = server.serverFirst(bytes("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    expect(text(serverFirst)).toBe(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    const serverFinal = server.serverFinal(
      bytes(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      ),
    );
    expect(text(serverFinal)).toBe("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    expect(server.username).toBe("user");
  });

  it("authenticates our client with both hashes, and names with ',' and '='", () => {
    const users = { alice: "wonderland", "a,b=c": "p,w=d" };
    expect(converse("scram-sha-256", users, "alice", "wonderland")).toBe("alice");
    expect(converse("scram-sha-512", users, "alice", "wonderland")).toBe("alice");
    expect(converse("scram-sha-512", users, "a,b=c", "p,w=d")).toBe("a,b=c");
  });

  it("refuses a wrong password and an unknown user alike, at the proof", () => {
    const users = { alice: "wonderland" };
    for (const [mechanism, name, password] of [
      ["scram-sha-256", "alice", "looking-glass"],
      ["scram-sha-512", "mallory", "wonderland"],
    ] as const) {
      let error: unknown;
      try {
        converse(mechanism, users, name, password);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ScramError);
      expect((error as ScramError).badCredentials).toBe(true);
    }
  });

  it("gives an unknown user the same salt every time, so the salt does not tell", () => {
    const lookup = () => undefined;
    const salts = [1, 2].map(() => {
      const server = new ScramServerExchange("sha256", lookup);
      const first = text(server.serverFirst(bytes("n,,n=ghost,r=abc")));
      return /,s=([^,]+),/.exec(first)?.[1];
    });
    expect(salts[0]).toBeDefined();
    expect(salts[1]).toBe(salts[0]);
  });

  it("accepts librdkafka 2.0's client-final nonce (its own nonce, then the combined one)", () => {
    const salt = Buffer.from("c2FsdHNhbHQ=", "base64");
    const credential = createScramCredential("sha256", "pencil", salt);
    const server = new ScramServerExchange("sha256", () => credential, "SERVER");
    const serverFirst = text(server.serverFirst(bytes("n,,n=user,r=CLIENT")));
    expect(serverFirst).toBe("r=CLIENTSERVER,s=c2FsdHNhbHQ=,i=4096");
    // The proof such a client computes: over the final message exactly as it sends it.
    const withoutProof = "c=biws,r=CLIENTCLIENTSERVER";
    const authMessage = `n=user,r=CLIENT,${serverFirst},${withoutProof}`;
    const salted = pbkdf2Sync("pencil", salt, 4096, 32, "sha256");
    const clientKey = createHmac("sha256", salted).update("Client Key").digest();
    const storedKey = createHash("sha256").update(clientKey).digest();
    const signature = createHmac("sha256", storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ (signature[i] as number)));
    const serverKey = createHmac("sha256", salted).update("Server Key").digest();
    const expected = createHmac("sha256", serverKey).update(authMessage).digest("base64");
    const final = server.serverFinal(bytes(`${withoutProof},p=${proof.toString("base64")}`));
    expect(text(final)).toBe(`v=${expected}`);
  });

  it("refuses a client-final nonce that is not the combined one", () => {
    const credential = createScramCredential("sha256", "pencil");
    const server = new ScramServerExchange("sha256", () => credential, "SERVER");
    server.serverFirst(bytes("n,,n=user,r=CLIENT"));
    expect(() => server.serverFinal(bytes("c=biws,r=EVILCLIENTSERVER,p=AAAA"))).toThrow(
      /nonce does not match/,
    );
  });

  it("refuses channel binding, mandatory extensions, an authzid for someone else and junk", () => {
    const credential = createScramCredential("sha256", "pw");
    const start = (message: string) =>
      new ScramServerExchange("sha256", () => credential).serverFirst(bytes(message));
    expect(() => start("p=tls-unique,,n=u,r=x")).toThrow(/channel binding is not supported/);
    expect(() => start("n,,m=ext,n=u,r=x")).toThrow(/malformed client-first-message/);
    expect(() => start("n,a=root,n=u,r=x")).toThrow(/differs from the user name/);
    expect(() => start("n,,n=u=41,r=x")).toThrow(/malformed user name/);
    expect(() => start("hello")).toThrow(ScramError);
    expect(() => start("n,a=u,n=u,r=x")).not.toThrow();
    const server = new ScramServerExchange("sha256", () => credential);
    expect(() => server.serverFinal(bytes("c=biws,r=x,p=AAAA"))).toThrow(/before client-first/);
  });

  it("checks that the channel-binding attribute repeats the gs2 header", () => {
    const credential = createScramCredential("sha256", "pw");
    const server = new ScramServerExchange("sha256", () => credential, "S");
    server.serverFirst(bytes("y,,n=u,r=C"));
    // "biws" is base64("n,,"); this client said "y,,".
    expect(() => server.serverFinal(bytes("c=biws,r=CS,p=AAAA"))).toThrow(/channel binding/);
  });
});
