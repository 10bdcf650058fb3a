/**
 * The files a config names, read before the binding graph is resolved: the protos of catalog
 * subjects (for the services they declare) and the vaults' keystores and trust stores.
 */
import { readFile } from "node:fs/promises";
import { relative, resolve } from "node:path";
import { childPath } from "./config-error.ts";
import { pemCertificates, pkcs12FriendlyNames, pkcs12OpenProblem } from "./keystore.ts";
import { protoServiceNames } from "./proto-services.ts";
import type { Namespace, Store } from "./schema.ts";
import type { Fail, LoadedStore, TopologyContext, TopologyOptions } from "./topology-context.ts";

/** Reads every catalog subject's proto and every vault store; problems go to `fail`. */
export async function loadTopologyFiles(
  ns: Namespace,
  opts: TopologyOptions,
  fail: Fail,
): Promise<Pick<TopologyContext, "protoServices" | "stores">> {
  const protoServices = new Map<string, string[]>(); // by catalog/subject
  for (const catalog of ns.catalogs.values()) {
    for (const [subject, { file, path }] of catalog.subjects) {
      const text = await readText(opts.baseDir, file);
      if (text === undefined) {
        fail(
          path,
          `file "${file}" does not exist (looked for ${resolve(opts.baseDir, file)}); create it or fix the path, which is relative to the config file's directory`,
        );
        continue;
      }
      protoServices.set(`${catalog.name}/${subject}`, protoServiceNames(text));
    }
  }
  const stores = new Map<Store, LoadedStore>();
  for (const vault of ns.vaults.values()) {
    for (const [use, store] of [
      ["keys", vault.keys],
      ["trust", vault.trust],
    ] as const) {
      if (!store) continue;
      const loaded = await loadStore(store, use, opts.baseDir, fail);
      if (loaded) stores.set(store, loaded);
    }
  }
  return { protoServices, stores };
}

async function readText(baseDir: string, file: string): Promise<string | undefined> {
  try {
    return await readFile(resolve(baseDir, file), "utf8");
  } catch {
    return undefined;
  }
}

/** Names the keystore file and where its password came from, and says what to set. */
function wrongPasswordMessage(store: Store, file: string): string {
  const shown = relative(process.cwd(), file) || file;
  const variables = store.passwordVariables ?? [];
  if (variables.length === 0) {
    return `wrong password for keystore ${shown}; write its password here, or take it from the environment (password: \${{env.KEYSTORE_PASSWORD}})`;
  }
  const names = variables.join(", ");
  const noun = variables.length === 1 ? "environment variable" : "environment variables";
  return `wrong password for keystore ${shown} (the password comes from ${noun} ${names}); set ${names} to the keystore's password`;
}

async function loadStore(
  store: Store,
  use: "keys" | "trust",
  baseDir: string,
  fail: (path: string, message: string) => undefined,
): Promise<LoadedStore | undefined> {
  const file = resolve(baseDir, store.store);
  const noun = use === "keys" ? "keystore" : "trust store";
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch {
    return fail(
      childPath(store.path, "store"),
      `${noun} "${store.store}" does not exist (looked for ${file}); create it${use === "keys" ? " (see examples/grpc.kafka.proxy/README.md)" : ""} or fix the path, which is relative to the config file's directory`,
    );
  }
  if (store.type === "pem") {
    const certificates = pemCertificates(Buffer.from(bytes).toString("utf8"));
    if (certificates.length === 0) {
      // A DER file (PKCS#12 included) starts with a SEQUENCE tag: Zilla's default trust type.
      const binary = bytes[0] === 0x30;
      return fail(
        childPath(store.path, "store"),
        binary
          ? `trust store "${store.store}" is not PEM (it looks like PKCS#12, Zilla's default, which this runtime cannot read as trust); export its certificates with "openssl pkcs12 -in ${store.store} -nokeys -out trust.pem" and use type: pem`
          : `trust store "${store.store}" holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the CA certificates to it`,
      );
    }
    return { kind: "pem", file: store.store, certificates };
  }
  const problem = store.passwordUnresolved ? undefined : pkcs12OpenProblem(bytes, store.password);
  if (problem !== undefined) {
    const wrongPassword = /mac verif|passphrase|password|decrypt/i.test(problem);
    if (wrongPassword && store.password === undefined) {
      return fail(
        childPath(store.path, "password"),
        `keystore "${store.store}" is protected; add its password (e.g. password: \${{env.KEYSTORE_PASSWORD}})`,
      );
    }
    return fail(
      childPath(store.path, wrongPassword ? "password" : "store"),
      wrongPassword
        ? wrongPasswordMessage(store, file)
        : `"${store.store}" is not a PKCS#12 keystore this runtime can read (${problem}); recreate it with "openssl pkcs12 -export"`,
    );
  }
  return { kind: "pkcs12", file: store.store, bytes, aliases: pkcs12FriendlyNames(bytes) };
}
