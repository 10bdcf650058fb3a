/**
 * TLS settings from tls server and tls client bindings: the keystore and aliases a vault
 * holds, the trust anchors it names, ALPN and SNI.
 */
import { rootCertificates } from "node:tls";
import { runtimeDescription, verifiesClientCertificates } from "../runtime/runtime.ts";
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
    const clients = clientCertificates(t);
    const result = keystore
      ? {
          ...keystore,
          ...(t.sni ? { sni: t.sni } : {}),
          alpn,
          ...clients,
          ...(t.version ? { minVersion: t.version } : {}),
        }
      : undefined;
    serverTlsCache.set(t, result);
    return result;
  };
  /** A tls server's client certificate settings: trust anchors, mutual, the x509 guard. */
  const clientCertificates = (t: TlsServer): Partial<NonNullable<NorthListener["tls"]>> => {
    const optionsPath = childPath(t.path, "options");
    // Kept even when the rest fails (reported), so routes guarded by it report nothing more.
    const authorization = t.authorization ? { authorization: { guard: t.authorization.name } } : {};
    // Zilla's default: listing trust asks every client for a certificate.
    const mutual = t.mutual ?? (t.trust?.length ? "required" : "none");
    if (mutual === "none") {
      if (t.authorization) {
        fail(
          t.authorization.path,
          `guard "${t.authorization.name}" reads client certificates, but this tls server asks for none; add trust: [<CA alias>] (and mutual: required or requested)`,
        );
      }
      return authorization;
    }
    if (!verifiesClientCertificates) {
      fail(
        childPath(optionsPath, t.mutual ? "mutual" : "trust"),
        `client certificates (mutual: ${mutual}) cannot be verified on ${runtimeDescription()}, whose TLS server does not check them against trust; run the gateway on Node or Bun for mutual TLS`,
      );
      return authorization;
    }
    if (!t.trust?.length) {
      fail(
        childPath(optionsPath, "mutual"),
        `mutual: ${mutual} needs the CAs that client certificates must chain to; add trust: [<CA alias>] naming certificates in the vault's trust store`,
      );
      return authorization;
    }
    const ca = trustCertificates(
      t.vault,
      t.trust,
      childPath(optionsPath, "trust"),
      `tls server "${t.name}"`,
    );
    return ca ? { ca, mutual, ...authorization } : authorization;
  };
  /** The PEM certificates `aliases` name in the vault's trust store (undefined: reported). */
  const trustCertificates = (
    vaultRef: Ref | undefined,
    aliases: Ref[],
    trustPath: string,
    who: string,
  ): string[] | undefined => {
    const vault = vaultRef ? ns.vaults.get(vaultRef.name) : undefined;
    if (!vaultRef) return fail(trustPath, `trust needs a vault; add "vault" to ${who}`);
    if (vault && !vault.trust) {
      if (!vault.declares.trust)
        fail(
          vaultRef.path,
          `vault "${vault.name}" has no trust store; add options.trust (store: a PEM file, type: pem) to it`,
        );
      return undefined;
    }
    const loaded = vault?.trust ? stores.get(vault.trust) : undefined;
    if (loaded?.kind !== "pem") return undefined;
    const selected: string[] = [];
    for (const alias of aliases) {
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
    return selected;
  };
  /** TLS client options; `options` is where keys and trust are written (for errors). */
  const clientTls = (
    t: TlsClient,
    options = childPath(t.path, "options"),
  ): TlsClientOptions | undefined => {
    const out: TlsClientOptions = {};
    if (t.trust && t.trust.length > 0) {
      const selected = trustCertificates(
        t.vault,
        t.trust,
        childPath(options, "trust"),
        `tls client "${t.name}"`,
      );
      if (selected) out.ca = t.trustcacerts ? [...rootCertificates, ...selected] : selected;
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
