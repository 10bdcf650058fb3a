import { describe, expect, it } from "vitest";
import {
  editExample,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";
import { createTlsResolver } from "./topology-tls.ts";

async function tlsServerOf(text: string) {
  const ctx = await topologyContextOf(text);
  const server = ctx.ns.bindings.get("north_tls_server");
  if (server?.role !== "tls.server") throw new Error("no tls server");
  return { ctx, tls: createTlsResolver(ctx).serverTls(server) };
}

describe("tls settings", () => {
  it("gives a tls server the vault's keystore, its password, SNI and ALPN", async () => {
    const { ctx, tls } = await tlsServerOf(exampleYaml);
    expect(tls?.pfx?.byteLength).toBeGreaterThan(0);
    expect(tls).toMatchObject({ passphrase: "zilla-example", sni: ["localhost"], alpn: ["h2"] });
    expect(problemsOf(ctx)).toEqual([]);
  });

  it("reports a key alias the keystore does not hold", async () => {
    const { ctx } = await tlsServerOf(
      editExample(["      keys:\n        - localhost", "      keys:\n        - otherhost"]),
    );
    expect(problemsOf(ctx)).toEqual([
      'bindings.north_tls_server.options.keys[0]: keystore "tls/localhost.p12" has no key "otherhost" (its aliases: localhost); fix the alias',
    ]);
  });

  it("reports ALPN without h2", async () => {
    const { ctx } = await tlsServerOf(
      editExample(["      alpn:\n        - h2", "      alpn:\n        - http/1.1"]),
    );
    expect(problemsOf(ctx)).toEqual([
      "bindings.north_tls_server.options.alpn: gRPC needs HTTP/2; add h2 to alpn",
    ]);
  });

  it("reports client trust without a vault", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    const options = createTlsResolver(ctx).clientTls({
      role: "tls.client",
      name: "upstream_tls",
      path: "bindings.upstream_tls",
      routes: [],
      trust: [{ name: "ca", path: "bindings.upstream_tls.options.trust[0]" }],
    });
    expect(options).toEqual({});
    expect(problemsOf(ctx)).toEqual([
      'bindings.upstream_tls.options.trust: trust needs a vault; add "vault" to tls client "upstream_tls"',
    ]);
  });
});
