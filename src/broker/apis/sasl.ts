/**
 * SASL for the embedded broker: SaslHandshake (v1) and SaslAuthenticate (v0-v2) with PLAIN
 * and SCRAM-SHA-256/512, and the gate that keeps every other API closed until a connection
 * has authenticated. As in Kafka, a failed exchange is answered with its error and then
 * the connection is closed; any other request before authentication closes it unanswered.
 *
 * SaslHandshake is advertised as v0-v1 because librdkafka only starts SASL when the range
 * includes v0, but it then sends v1, as kafkajs does. A real v0 handshake is refused with
 * UNSUPPORTED_VERSION: after it Kafka expects raw SASL tokens without request headers, a
 * framing no client uses against a broker that offers SaslAuthenticate.
 */
import { timingSafeEqual } from "node:crypto";
import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { Writer } from "../../kafka/protocol/wire.ts";
import type { ApiHandler, RequestContext } from "../api.ts";
import type { RequestGate } from "../dispatcher.ts";
import {
  createScramCredential,
  type ScramCredential,
  ScramError,
  type ScramHash,
  ScramServerExchange,
} from "../scram-server.ts";

/** A SASL mechanism the broker can require. */
export type SaslMechanism = "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";

/** Which mechanisms the broker offers and the users it knows (name → password). */
export interface BrokerSaslOptions {
  mechanisms: SaslMechanism[];
  users: Record<string, string>;
}

/** The SASL APIs and the gate that holds back everything else until authenticated. */
export interface BrokerSasl {
  handlers: ApiHandler[];
  gate: RequestGate;
}

const KNOWN_MECHANISMS: readonly string[] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

interface Session {
  state: "handshake" | "authenticate" | "authenticated";
  mechanism?: SaslMechanism;
  scram?: ScramServerExchange;
}

interface AuthenticateAnswer {
  errorCode: number;
  message: string | null;
  authBytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();

/** Equal strings, compared in constant time for equal lengths. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads PLAIN's "authzid NUL authcid NUL password" (RFC 4616); null when malformed. */
function parsePlain(
  bytes: Uint8Array,
): { authzid: string; username: string; password: string } | null {
  const parts = decoder.decode(bytes).split("\u0000");
  if (parts.length !== 3) return null;
  const [authzid, username, password] = parts as [string, string, string];
  return username === "" ? null : { authzid, username, password };
}

/** Builds the SASL handlers and gate; throws on an unknown or empty mechanism list. */
export function createBrokerSasl(
  options: BrokerSaslOptions,
  log: (line: string) => void,
): BrokerSasl {
  if (options.mechanisms.length === 0) throw new Error("sasl.mechanisms must not be empty");
  for (const mechanism of options.mechanisms) {
    if (!KNOWN_MECHANISMS.includes(mechanism)) {
      throw new Error(
        `unknown SASL mechanism "${mechanism}"; use one of ${KNOWN_MECHANISMS.join(", ")}`,
      );
    }
  }
  const mechanisms = [...new Set(options.mechanisms)];
  const users = new Map(Object.entries(options.users));
  const sessions = new Map<number, Session>();
  // Derived on first use: 4096 PBKDF2 rounds per user and mechanism need not delay start-up.
  const credentials = new Map<string, ScramCredential>();

  const scramCredential = (hash: ScramHash, username: string): ScramCredential | undefined => {
    const password = users.get(username);
    if (password === undefined) return undefined;
    const key = `${hash}\u0000${username}`;
    let credential = credentials.get(key);
    if (!credential) {
      credential = createScramCredential(hash, password);
      credentials.set(key, credential);
    }
    return credential;
  };

  const sessionOf = (ctx: RequestContext): Session => {
    let session = sessions.get(ctx.connectionId);
    if (!session) {
      session = { state: "handshake" };
      sessions.set(ctx.connectionId, session);
      ctx.signal?.addEventListener("abort", () => sessions.delete(ctx.connectionId), {
        once: true,
      });
    }
    return session;
  };

  /** Logs why and closes the connection after this answer, as Kafka does. */
  const refuse = (ctx: RequestContext, message: string): void => {
    log(`connection ${ctx.connectionId}: ${message}`);
    ctx.closeAfterResponse?.();
  };

  const failed = (ctx: RequestContext, errorCode: number, message: string): AuthenticateAnswer => {
    refuse(ctx, message);
    return { errorCode, message, authBytes: EMPTY };
  };

  const authenticate = (
    session: Session,
    bytes: Uint8Array,
    ctx: RequestContext,
  ): AuthenticateAnswer => {
    const mechanism = session.mechanism as SaslMechanism;
    // Kafka's words, which clients print as they are.
    const invalid = `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`;
    const succeeded = (username: string, authBytes: Uint8Array): AuthenticateAnswer => {
      session.state = "authenticated";
      session.scram = undefined;
      log(`connection ${ctx.connectionId}: authenticated "${username}" with SASL ${mechanism}`);
      return { errorCode: ErrorCode.NONE, message: null, authBytes };
    };
    if (mechanism === "PLAIN") {
      const plain = parsePlain(bytes);
      if (plain === null) {
        return failed(
          ctx,
          ErrorCode.SASL_AUTHENTICATION_FAILED,
          "Authentication failed: malformed PLAIN message",
        );
      }
      if (plain.authzid !== "" && plain.authzid !== plain.username) {
        return failed(
          ctx,
          ErrorCode.SASL_AUTHENTICATION_FAILED,
          "Authentication failed: Client requested an authorization id that is different from username",
        );
      }
      const expected = users.get(plain.username);
      if (expected === undefined || !sameSecret(plain.password, expected)) {
        return failed(
          ctx,
          ErrorCode.SASL_AUTHENTICATION_FAILED,
          `${invalid} (user "${plain.username}")`,
        );
      }
      return succeeded(plain.username, EMPTY);
    }
    const hash: ScramHash = mechanism === "SCRAM-SHA-256" ? "sha256" : "sha512";
    try {
      if (!session.scram) {
        session.scram = new ScramServerExchange(hash, (name) => scramCredential(hash, name));
        return {
          errorCode: ErrorCode.NONE,
          message: null,
          authBytes: session.scram.serverFirst(bytes),
        };
      }
      const scram = session.scram;
      return succeeded(scram.username, scram.serverFinal(bytes));
    } catch (err) {
      if (!(err instanceof ScramError)) throw err;
      const user = session.scram?.username;
      const message = err.badCredentials
        ? `${invalid}${user ? ` (user "${user}")` : ""}`
        : `Authentication failed: ${err.message}`;
      return failed(ctx, ErrorCode.SASL_AUTHENTICATION_FAILED, message);
    }
  };

  const handshake: ApiHandler = {
    apiKey: ApiKey.SaslHandshake,
    name: "SaslHandshake",
    minVersion: 0,
    maxVersion: 1,
    firstFlexibleVersion: Number.POSITIVE_INFINITY,
    handle(req, ctx) {
      const requested = req.string();
      const session = sessionOf(ctx);
      let errorCode: number = ErrorCode.NONE;
      if (ctx.apiVersion === 0 && session.state !== "authenticated") {
        errorCode = ErrorCode.UNSUPPORTED_VERSION;
        refuse(ctx, "SaslHandshake v0 (raw SASL tokens) is not supported; use v1");
      } else if (session.state === "authenticated") {
        // Kafka answers a late handshake with an error and keeps the connection.
        errorCode = ErrorCode.ILLEGAL_SASL_STATE;
      } else if (session.state === "authenticate") {
        errorCode = ErrorCode.ILLEGAL_SASL_STATE;
        refuse(ctx, "second SaslHandshake before authenticating");
      } else if (!mechanisms.includes(requested as SaslMechanism)) {
        errorCode = ErrorCode.UNSUPPORTED_SASL_MECHANISM;
        refuse(ctx, `SASL mechanism "${requested}" requested; offered: ${mechanisms.join(", ")}`);
      } else {
        session.state = "authenticate";
        session.mechanism = requested as SaslMechanism;
      }
      return (w) => {
        w.int16(errorCode);
        w.array(mechanisms, (w, m) => {
          w.string(m);
        });
      };
    },
  };

  const authenticateHandler: ApiHandler = {
    apiKey: ApiKey.SaslAuthenticate,
    name: "SaslAuthenticate",
    minVersion: 0,
    maxVersion: 2,
    firstFlexibleVersion: 2,
    handle(req, ctx) {
      const bytes = ctx.flexible ? req.compactBytes() : req.bytes();
      if (ctx.flexible) req.taggedFields();
      const session = sessionOf(ctx);
      let answer: AuthenticateAnswer;
      if (session.state === "authenticated") {
        // Kafka answers without closing (re-authentication, KIP-368, is not supported here).
        answer = {
          errorCode: ErrorCode.ILLEGAL_SASL_STATE,
          message: "SaslAuthenticate request received after successful authentication",
          authBytes: EMPTY,
        };
      } else if (session.state === "handshake") {
        answer = failed(
          ctx,
          ErrorCode.ILLEGAL_SASL_STATE,
          "Unexpected SaslAuthenticate request before SaslHandshake",
        );
      } else {
        answer = authenticate(session, bytes, ctx);
      }
      return (w) => writeAuthenticateResponse(w, ctx, answer);
    },
  };

  return {
    handlers: [handshake, authenticateHandler],
    gate: {
      refusal(apiKey, connectionId) {
        if (sessions.get(connectionId)?.state === "authenticated") return null;
        if (
          apiKey === ApiKey.ApiVersions ||
          apiKey === ApiKey.SaslHandshake ||
          apiKey === ApiKey.SaslAuthenticate
        ) {
          return null;
        }
        return `request for API ${apiKey} before SASL authentication`;
      },
    },
  };
}

function writeAuthenticateResponse(
  w: Writer,
  ctx: RequestContext,
  answer: AuthenticateAnswer,
): void {
  w.int16(answer.errorCode);
  if (ctx.flexible) {
    w.compactNullableString(answer.message).compactBytes(answer.authBytes);
  } else {
    w.nullableString(answer.message).bytes(answer.authBytes);
  }
  // Session lifetime 0: no re-authentication deadline.
  if (ctx.apiVersion >= 1) w.int64(0);
  if (ctx.flexible) w.taggedFields();
}
