/**
 * Decoders of the namespace's named resources: filesystem vaults (keys and trust stores),
 * filesystem catalogs (.proto subjects). Guards are decoded in decode-guards.ts and
 * decode-guard-options.ts.
 */
import { childPath } from "./config-error.ts";
import {
  type DecodeContext,
  has,
  type Mapping,
  namedEntries,
  readChoice,
  readMapping,
  readName,
  readOptional,
  readString,
  report,
} from "./decode.ts";
import type { Catalog, Store, Vault } from "./schema.ts";

/** A `vaults` entry: a filesystem vault with keys and trust stores. */
export function decodeVault(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): Vault | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["type", "options"],
    required: ["type"],
    hints: { type: "add type: filesystem" },
  });
  if (!m) return undefined;
  if (!isFilesystemType(ctx, m, path, "vault", "")) return undefined;
  const vault: Vault = { name, path, declares: { keys: false, trust: false } };
  if (!has(m, "options")) return vault;
  const optionsPath = childPath(path, "options");
  const o = readMapping(ctx, m.options, optionsPath, {
    keys: ["keys", "trust"],
    unsupported: {
      signers: 'vault "signers" are not supported by this gateway; remove them',
      secrets: 'vault "secrets" are not supported by this gateway; remove them',
      revocation: "certificate revocation is not supported by this gateway; remove it",
    },
  });
  if (!o) return vault;
  vault.declares = { keys: has(o, "keys"), trust: has(o, "trust") };
  readOptional(
    ctx,
    o,
    optionsPath,
    "keys",
    (c, v, p) => decodeStore(c, v, p, "keys"),
    vault,
    "keys",
  );
  readOptional(
    ctx,
    o,
    optionsPath,
    "trust",
    (c, v, p) => decodeStore(c, v, p, "trust"),
    vault,
    "trust",
  );
  return vault;
}

function decodeStore(
  ctx: DecodeContext,
  value: unknown,
  path: string,
  use: "keys" | "trust",
): Store | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["store", "type", "password"],
    required: ["store"],
    unsupported: {
      entries:
        'store "entries" are not supported by this gateway; remove them (aliases are chosen by the binding)',
    },
    hints: { store: "add the keystore file, relative to the config file" },
  });
  if (!m) return undefined;
  const store = has(m, "store") ? readName(ctx, m.store, childPath(path, "store")) : undefined;
  const typePath = childPath(path, "type");
  let type: Store["type"] = use === "trust" ? "pem" : "pkcs12";
  if (has(m, "type")) {
    const written = readChoice(ctx, m.type, typePath, ["pkcs12", "jks", "pem"]);
    if (written === "jks") {
      report(
        ctx,
        typePath,
        `JKS stores are not supported by this gateway; convert it with "keytool -importkeystore -srckeystore ${store ?? "store.jks"} -destkeystore store.p12 -deststoretype pkcs12" and use type: pkcs12`,
      );
      return undefined;
    }
    if (written === "pem" && use === "keys") {
      report(
        ctx,
        typePath,
        'a PEM "keys" store is not supported; bundle key and certificate with "openssl pkcs12 -export -name <alias> -inkey key.pem -in cert.pem -out keys.p12" and use type: pkcs12',
      );
      return undefined;
    }
    if (written === "pkcs12" && use === "trust") {
      report(
        ctx,
        typePath,
        `a PKCS#12 trust store is not supported; export its certificates with "openssl pkcs12 -in ${store ?? "trust.p12"} -nokeys -out trust.pem" and use type: pem`,
      );
      return undefined;
    }
    if (written === undefined) return undefined;
    type = written as Store["type"];
  }
  const password = has(m, "password")
    ? readString(ctx, m.password, childPath(path, "password"))
    : undefined;
  if (store === undefined) return undefined;
  const passwordUnresolved = ctx.unresolved.has(childPath(path, "password"));
  const passwordVariables = ctx.variables?.get(childPath(path, "password"));
  return {
    path,
    store,
    type,
    ...(password !== undefined ? { password } : {}),
    ...(passwordUnresolved ? { passwordUnresolved } : {}),
    ...(passwordVariables ? { passwordVariables } : {}),
  };
}

/** A `catalogs` entry: a filesystem catalog of .proto subjects. */
export function decodeCatalog(
  ctx: DecodeContext,
  name: string,
  value: unknown,
  path: string,
): Catalog | undefined {
  const m = readMapping(ctx, value, path, {
    keys: ["type", "options"],
    required: ["type", "options"],
    unsupported: { vault: 'a filesystem catalog takes no "vault"; remove it' },
    hints: {
      type: "add type: filesystem",
      options: "add options.subjects naming the .proto files",
    },
  });
  if (!m) return undefined;
  if (!isFilesystemType(ctx, m, path, "catalog", " with the .proto files")) return undefined;
  const catalog: Catalog = { name, path, subjects: new Map() };
  if (!has(m, "options")) return catalog;
  const optionsPath = childPath(path, "options");
  const o = readMapping(ctx, m.options, optionsPath, {
    keys: ["subjects"],
    required: ["subjects"],
    hints: { subjects: "add subjects: { <name>: { path: <file.proto> } }" },
  });
  if (!o || !has(o, "subjects")) return catalog;
  for (const [subject, v, p] of namedEntries(ctx, o, "subjects", optionsPath)) {
    const s = readMapping(ctx, v, p, { keys: ["path"], required: ["path"] });
    if (!s || !has(s, "path")) continue;
    const file = readName(ctx, s.path, childPath(p, "path"));
    if (file !== undefined) catalog.subjects.set(subject, { file, path: childPath(p, "path") });
  }
  return catalog;
}

/** Whether a vault or catalog `type`, if readable, is filesystem (the only one here); reports it if not. */
function isFilesystemType(
  ctx: DecodeContext,
  m: Mapping,
  path: string,
  what: "vault" | "catalog",
  adviceTail: string,
): boolean {
  if (!has(m, "type")) return true;
  const type = readString(ctx, m.type, childPath(path, "type"));
  if (type === undefined || type === "filesystem") return true;
  report(
    ctx,
    childPath(path, "type"),
    `${what} type "${type}" is not supported by this gateway; use type: filesystem${adviceTail}`,
  );
  return false;
}
