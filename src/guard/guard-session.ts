/**
 * What a guard says about a caller: a session (identity, roles, attributes, until when) or
 * the reason it gave none. Shared by the jwt and x509 guards and by north's authorization.
 */

/** A caller a guard accepted. */
export interface GuardSession {
  /** The guard's name. */
  readonly guard: string;
  /** The caller's name (the jwt's `sub`, the certificate's subject, ...), when the credentials have one. */
  readonly identity: string | undefined;
  readonly roles: readonly string[];
  /** The guard's `attributes`, by name. */
  readonly attributes: Readonly<Record<string, string>>;
  /** When the credentials stop being valid (epoch ms); undefined: they do not expire. */
  readonly expiresAtMs: number | undefined;
}

/** A guard's answer for one set of credentials. */
export type GuardVerdict =
  | { readonly ok: true; readonly session: GuardSession }
  | { readonly ok: false; readonly reason: string };

/** A guard as north uses it. */
export interface Guard {
  readonly name: string;
  readonly type: "jwt" | "x509";
  /** Seconds before expiry at which a stream is asked to re-authorize (jwt `challenge`). */
  readonly challengeSeconds: number | undefined;
}

/** Whether a session holds every one of `roles` (Zilla: the route's roles are a subset). */
export function hasRoles(session: GuardSession, roles: readonly string[]): boolean {
  return roles.every((role) => session.roles.includes(role));
}

/** A claim or field value as attribute text: strings as they are, anything else as JSON. */
export function attributeText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}
