/**
 * The running guards of one north binding, made from its config's `guards`. Rebuilt on a
 * reload only when a guard's config changed, so fetched keys and verified tokens survive
 * reloads that touch nothing else.
 */
import type { GuardConfig } from "../config/types.ts";
import type { Logger } from "../ops/logger.ts";
import { createJwtGuard, type JwtGuard, type JwtGuardOptions } from "./jwt-guard.ts";
import { createX509Guard, type X509Guard } from "./x509-guard.ts";

export interface GuardSet {
  /** The config the guards were made from (compared on reload). */
  readonly configs: Readonly<Record<string, GuardConfig>>;
  jwt(name: string): JwtGuard | undefined;
  x509(name: string): X509Guard | undefined;
  /** Fetches remote keys of every jwt guard now; failures are logged, not thrown. */
  warm(): Promise<void>;
}

/** Creates the guards named in `configs`. */
export function createGuardSet(
  configs: Readonly<Record<string, GuardConfig>>,
  opts: Omit<JwtGuardOptions, "logger"> & { logger: Logger },
): GuardSet {
  const jwt = new Map<string, JwtGuard>();
  const x509 = new Map<string, X509Guard>();
  for (const [name, config] of Object.entries(configs)) {
    if (config.type === "jwt") jwt.set(name, createJwtGuard(config, opts));
    else x509.set(name, createX509Guard(config));
  }
  return {
    configs,
    jwt: (name) => jwt.get(name),
    x509: (name) => x509.get(name),
    async warm() {
      await Promise.all([...jwt.values()].map((g) => g.warm()));
    },
  };
}

/** The guard set for `configs`: `current` when nothing changed, else a new one. */
export function guardSetFor(
  current: GuardSet | undefined,
  configs: Readonly<Record<string, GuardConfig>> | undefined,
  opts: Omit<JwtGuardOptions, "logger"> & { logger: Logger },
): GuardSet | undefined {
  if (!configs || Object.keys(configs).length === 0) return undefined;
  if (current && JSON.stringify(current.configs) === JSON.stringify(configs)) return current;
  return createGuardSet(configs, opts);
}
