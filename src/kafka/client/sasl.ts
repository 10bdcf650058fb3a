/**
 * SASL for the gateway's Kafka client: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
 * RFC 7677), as exchanged through Kafka's SaslAuthenticate requests.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** PLAIN's single message: authzid (empty), authcid and password separated by NUL. */
export function plainInitialResponse(username: string, password: string): Uint8Array {
  return encoder.encode(`\u0000${username}\u0000${password}`);
}

/** One SCRAM conversation, client side. */
export class ScramClient {
  private readonly hash: "sha256" | "sha512";
  private readonly username: string;
  private readonly password: string;
  private readonly nonce: string;
  private clientFirstBare = "";
  private serverSignature: Buffer | undefined;

  constructor(
    mechanism: "scram-sha-256" | "scram-sha-512",
    username: string,
    password: string,
    nonce = randomBytes(24).toString("base64"),
  ) {
    this.hash = mechanism === "scram-sha-256" ? "sha256" : "sha512";
    this.username = username;
    this.password = password;
    this.nonce = nonce;
  }

  /** client-first-message: no channel binding, the user name and our nonce. */
  clientFirst(): Uint8Array {
    const name = this.username.replaceAll("=", "=3D").replaceAll(",", "=2C");
    this.clientFirstBare = `n=${name},r=${this.nonce}`;
    return encoder.encode(`n,,${this.clientFirstBare}`);
  }

  /** client-final-message for the server's first message (throws on a bad challenge). */
  clientFinal(serverFirstBytes: Uint8Array): Uint8Array {
    const serverFirst = decoder.decode(serverFirstBytes);
    const fields = parseFields(serverFirst);
    const nonce = fields.get("r");
    const salt = fields.get("s");
    const iterations = Number(fields.get("i"));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error(`SCRAM: malformed server challenge "${serverFirst}"`);
    }
    if (!nonce.startsWith(this.nonce)) throw new Error("SCRAM: server nonce does not extend ours");
    const size = this.hash === "sha256" ? 32 : 64;
    const salted = pbkdf2Sync(
      this.password,
      Buffer.from(salt, "base64"),
      iterations,
      size,
      this.hash,
    );
    const clientKey = this.hmac(salted, "Client Key");
    const storedKey = createHash(this.hash).update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = this.hmac(storedKey, authMessage);
    const proof = Buffer.alloc(size);
    for (let i = 0; i < size; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
    this.serverSignature = this.hmac(this.hmac(salted, "Server Key"), authMessage);
    return encoder.encode(`${withoutProof},p=${proof.toString("base64")}`);
  }

  /** Checks the server's proof that it knows the password too. */
  verifyServerFinal(serverFinalBytes: Uint8Array): void {
    const fields = parseFields(decoder.decode(serverFinalBytes));
    const error = fields.get("e");
    if (error) throw new Error(`SCRAM: server refused: ${error}`);
    const verifier = Buffer.from(fields.get("v") ?? "", "base64");
    const expected = this.serverSignature;
    if (!expected || verifier.length !== expected.length || !timingSafeEqual(verifier, expected)) {
      throw new Error("SCRAM: the server's signature does not match");
    }
  }

  private hmac(key: Buffer, text: string): Buffer {
    return createHmac(this.hash, key).update(text).digest();
  }
}

function parseFields(message: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return fields;
}
