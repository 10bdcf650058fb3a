/**
 * The server side of SCRAM-SHA-256/512 (RFC 5802, RFC 7677) for the embedded broker: the
 * stored credential (salt, iterations, StoredKey, ServerKey; never the password), and one
 * conversation that answers the client's first message with a salt and nonce, checks the
 * client's proof and proves back that the server knows the credential too.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/** The hash of a SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512. */
export type ScramHash = "sha256" | "sha512";

/** What a server keeps for one user and mechanism (RFC 5802 §3). */
export interface ScramCredential {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** A SCRAM message the client got wrong, or (`badCredentials`) a proof that does not match. */
export class ScramError extends Error {
  override name = "ScramError";
  readonly badCredentials: boolean;
  constructor(message: string, badCredentials = false) {
    super(message);
    this.badCredentials = badCredentials;
  }
}

/** Kafka's minimum (and default) iteration count. */
export const SCRAM_ITERATIONS = 4096;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function hmac(hash: ScramHash, key: Buffer, text: string): Buffer {
  return createHmac(hash, key).update(text).digest();
}

/** Derives the stored credential from a password (a random salt unless one is given). */
export function createScramCredential(
  hash: ScramHash,
  password: string,
  salt: Buffer = randomBytes(32),
  iterations = SCRAM_ITERATIONS,
): ScramCredential {
  const size = hash === "sha256" ? 32 : 64;
  const salted = pbkdf2Sync(password, salt, iterations, size, hash);
  const clientKey = hmac(hash, salted, "Client Key");
  return {
    salt,
    iterations,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: hmac(hash, salted, "Server Key"),
  };
}

/**
 * Splits "k=v,k=v" into ordered pairs; a part without "k=" is malformed. Keys may be longer
 * than RFC 5802's single letter: Kafka's own extensions (tokenauth=true) are words.
 */
function attributes(message: string): [string, string][] {
  return message.split(",").map((part) => {
    const eq = part.indexOf("=");
    if (eq < 1) throw new ScramError(`malformed attribute "${part}"`);
    return [part.slice(0, eq), part.slice(eq + 1)];
  });
}

/** A saslname with "=2C" and "=3D" decoded; any other "=" is malformed (RFC 5802 §5.1). */
function decodeSaslName(name: string): string {
  if (/=(?!2C|3D)/.test(name)) throw new ScramError(`malformed user name "${name}"`);
  return name.replaceAll("=2C", ",").replaceAll("=3D", "=");
}

/**
 * One SCRAM conversation, server side: `serverFirst` then `serverFinal`. `lookup` returns the
 * user's credential; for an unknown user the exchange goes on with a made-up salt and fails
 * at the proof, as for a wrong password, so that the answer does not say which names exist.
 */
export class ScramServerExchange {
  private readonly hash: ScramHash;
  private readonly lookup: (username: string) => ScramCredential | undefined;
  private readonly serverNonce: string;
  private credential: ScramCredential | undefined;
  private gs2Header = "";
  private clientFirstBare = "";
  private serverFirstMessage = "";
  private clientNonce = "";
  private nonce = "";
  /** The authenticated user name, once `serverFinal` has accepted the proof. */
  username = "";

  constructor(
    hash: ScramHash,
    lookup: (username: string) => ScramCredential | undefined,
    serverNonce = randomBytes(18).toString("base64"),
  ) {
    this.hash = hash;
    this.lookup = lookup;
    this.serverNonce = serverNonce;
  }

  /** Answers client-first-message with server-first-message (nonce, salt, iterations). */
  serverFirst(clientFirstBytes: Uint8Array): Uint8Array {
    const message = decodeText(clientFirstBytes);
    // gs2-header: "n" or "y" (no channel binding), optional "a=authzid", then the bare part.
    const match = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(message);
    if (!match) {
      throw new ScramError(
        message.startsWith("p=")
          ? "channel binding is not supported"
          : `malformed client-first-message "${message}"`,
      );
    }
    const bare = match[3] as string;
    const fields = attributes(bare);
    const [user, nonce] = fields;
    if (user?.[0] !== "n" || nonce?.[0] !== "r" || nonce[1] === "") {
      // "m=" (a mandatory extension) lands here too: none is supported.
      throw new ScramError(`malformed client-first-message "${message}"`);
    }
    const username = decodeSaslName(user[1]);
    const authzid = match[2] === undefined ? "" : decodeSaslName(match[2].slice(2));
    if (authzid !== "" && authzid !== username) {
      throw new ScramError(`authorization id "${authzid}" differs from the user name`);
    }
    this.username = username;
    this.credential = this.lookup(username) ?? this.decoy(username);
    this.gs2Header = message.slice(0, message.length - bare.length);
    this.clientFirstBare = bare;
    this.clientNonce = nonce[1];
    this.nonce = nonce[1] + this.serverNonce;
    const { salt, iterations } = this.credential;
    this.serverFirstMessage = `r=${this.nonce},s=${salt.toString("base64")},i=${iterations}`;
    return encoder.encode(this.serverFirstMessage);
  }

  /** Checks client-final-message's proof; answers with server-final-message ("v=..."). */
  serverFinal(clientFinalBytes: Uint8Array): Uint8Array {
    const credential = this.credential;
    if (!credential) throw new ScramError("client-final-message before client-first-message");
    const message = decodeText(clientFinalBytes);
    const proofAt = message.lastIndexOf(",p=");
    if (proofAt < 0) throw new ScramError("client-final-message without a proof");
    const withoutProof = message.slice(0, proofAt);
    const fields = new Map(attributes(withoutProof));
    const binding = fields.get("c");
    if (binding === undefined || Buffer.from(binding, "base64").toString() !== this.gs2Header) {
      throw new ScramError("channel binding does not match the client-first-message");
    }
    // librdkafka before 2.2 sends its own nonce twice (client nonce + the combined nonce);
    // Kafka accepted that (it checked endsWith), so this broker accepts exactly that too.
    const nonce = fields.get("r");
    if (nonce !== this.nonce && nonce !== this.clientNonce + this.nonce) {
      throw new ScramError("nonce does not match");
    }
    const proof = Buffer.from(message.slice(proofAt + 3), "base64");
    const authMessage = `${this.clientFirstBare},${this.serverFirstMessage},${withoutProof}`;
    const signature = hmac(this.hash, credential.storedKey, authMessage);
    if (proof.length !== signature.length) throw new ScramError("invalid credentials", true);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) {
      clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    }
    const storedKey = createHash(this.hash).update(clientKey).digest();
    if (!timingSafeEqual(storedKey, credential.storedKey)) {
      throw new ScramError("invalid credentials", true);
    }
    const serverSignature = hmac(this.hash, credential.serverKey, authMessage);
    return encoder.encode(`v=${serverSignature.toString("base64")}`);
  }

  /** A credential no proof matches, with a salt that is stable per name (no probing by salt). */
  private decoy(username: string): ScramCredential {
    const size = this.hash === "sha256" ? 32 : 64;
    return {
      salt: hmac(this.hash, DECOY_SECRET, username).subarray(0, 32),
      iterations: SCRAM_ITERATIONS,
      storedKey: randomBytes(size),
      serverKey: randomBytes(size),
    };
  }
}

const DECOY_SECRET = randomBytes(32);

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ScramError("message is not UTF-8");
  }
}
