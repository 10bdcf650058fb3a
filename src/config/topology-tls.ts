/**
 * TLS settings from tls server and tls client bindings: the keystore and aliases a vault
 * holds, the trust anchors it names, ALPN and SNI.
 */
import { rootCertificates } from "node:tls";
import { childPath } from "./config-error.ts";
import type { Ref } from "./decode.ts";
import type { TlsClient, TlsServer } from "./schema.ts";
import type { TopologyContext } from "./topology-context.ts";
import type { NorthListener, TlsClientOptions } from "./types.ts";

export interface TlsResolver {
  /** A listener's TLS options from its tls server (undefined when its keys are missing). */
  serverTls(t: TlsServer): NorthListener["tls"];
  /** TLS client options; `options` is where keys and trust are written (for errors). */
  clientTls(t: TlsClient, options?: string): TlsClientOptions | undefined;
}

/** Resolves TLS bindings against the loaded vault stores; problems go to `ctx.fail`. */
export function createTlsResolver(ctx: TopologyContext): TlsResolver {
  const { ns, stores, fail } = ctx;
  const pickKeystore = (
    vaultRef: Ref | undefined,
    aliases: Ref[],
    aliasesPath: string,
    who: string,
  ) => {
    const vault = vaultRef ? ns.vaults.get(vaultRef.name) : undefined;
    if (!vaultRef || !vault) {
      if (!vaultRef) fail(aliasesPath, `keys need a vault; add "vault" to ${who}`);
      return undefined;
    }
    if (!vault.keys) {
      if (vault.declares.keys) return undefined;
      return fail(
        vaultRef.path,
        `vault "${vault.name}" has no keys store; add options.keys (store, type, password) to it`,
      );
    }
    const loaded = stores.get(vault.keys);
    if (loaded?.kind !== "pkcs12") return undefined;
    for (const alias of aliases) {
      if (loaded.aliases.length > 0 && !loaded.aliases.includes(alias.name)) {
        fail(
          alias.path,
          `keystore "${loaded.file}" has no key "${alias.name}" (its aliases: ${loaded.aliases.join(", ")}); fix the alias`,
        );
      }
    }
    return {
      pfx: loaded.bytes,
      ...(vault.keys.password !== undefined ? { passphrase: vault.keys.password } : {}),
    };
  };
  const serverTlsCache = new Map<TlsServer, NorthListener["tls"]>();
  const serverTls = (t: TlsServer): NorthListener["tls"] => {
    if (serverTlsCache.has(t)) return serverTlsCache.get(t);
    const keysPath = childPath(childPath(t.path, "options"), "keys");
    if (t.keys.length === 0)
      fail(keysPath, "list the alias of the server key in the vault, e.g. [localhost]");
    const keystore = pickKeystore(t.vault, t.keys, keysPath, `tls server "${t.name}"`);
    const alpn = t.alpn ?? ["h2"];
    if (!alpn.includes("h2")) {
      fail(childPath(childPath(t.path, "options"), "alpn"), "gRPC needs HTTP/2; add h2 to alpn");
    }
    const result = keystore ? { ...keystore, ...(t.sni ? { sni: t.sni } : {}), alpn } : undefined;
    serverTlsCache.set(t, result);
    return result;
  };
  /** TLS client options; `options` is where keys and trust are written (for errors). */
  const clientTls = (
    t: TlsClient,
    options = childPath(t.path, "options"),
  ): TlsClientOptions | undefined => {
    const out: TlsClientOptions = {};
    if (t.trust && t.trust.length > 0) {
      const vault = t.vault ? ns.vaults.get(t.vault.name) : undefined;
      if (!t.vault)
        fail(
          childPath(options, "trust"),
          `trust needs a vault; add "vault" to tls client "${t.name}"`,
        );
      else if (vault && !vault.trust) {
        if (!vault.declares.trust)
          fail(
            t.vault.path,
            `vault "${vault.name}" has no trust store; add options.trust (store: a PEM file, type: pem) to it`,
          );
      } else if (vault?.trust) {
        const loaded = stores.get(vault.trust);
        if (loaded?.kind === "pem") {
          const selected: string[] = [];
          for (const alias of t.trust) {
            const found = loaded.certificates.filter((c) => c.commonName === alias.name);
            if (found.length === 0) {
              const names = loaded.certificates.map((c) => c.commonName ?? "?").join(", ");
              fail(
                alias.path,
                `trust store "${loaded.file}" has no certificate with common name "${alias.name}" (it has: ${names || "none"}); fix the alias`,
              );
            }
            selected.push(...found.map((c) => c.pem));
          }
          out.ca = t.trustcacerts ? [...rootCertificates, ...selected] : selected;
        }
      }
    }
    if (t.keys && t.keys.length > 0) {
      const keystore = pickKeystore(
        t.vault,
        t.keys,
        childPath(options, "keys"),
        `tls client "${t.name}"`,
      );
      if (keystore) Object.assign(out, keystore);
    }
    const sni = t.sni?.[0];
    if (sni !== undefined) out.sni = sni;
    if (t.alpn) out.alpn = t.alpn;
    return out;
  };
  return { serverTls, clientTls };
}
