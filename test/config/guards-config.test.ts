// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are zilla.yaml text, whose ${...} are not JavaScript
/**
 * The guard parts of a zilla.yaml as Zilla writes them: `guards` (jwt with inline keys or a
 * JWKS URL, x509), the http server's `authorization.<guard>.credentials`, the tls server's
 * `trust`, `mutual` and `authorization`, `guarded` routes and `${guarded[...]}` expressions;
 * what each resolves to, and the error (with what to do) for each mistake.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatConfigErrors, formatPipelines } from "../../src/config/format-pipelines.ts";
import { parseConfig } from "../../src/config/load-config.ts";
import { createSelfSignedCertificate } from "../../src/config/self-signed.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

const exampleDir = fileURLToPath(new URL("../../examples/grpc.kafka.proxy.jwt/", import.meta.url));
const example = readFileSync(join(exampleDir, "zilla.yaml"), "utf8");
const env = {
  KEYSTORE_PASSWORD: "zilla-example",
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};
let dir: string;
let registry: ServiceRegistry;

beforeAll(async () => {
  registry = await loadServiceRegistry();
  dir = mkdtempSync(join(tmpdir(), "guards-config-"));
  mkdirSync(join(dir, "proto"));
  mkdirSync(join(dir, "tls"));
  copyFileSync(join(exampleDir, "proto/echo.proto"), join(dir, "proto/echo.proto"));
  copyFileSync(join(exampleDir, "tls/localhost.p12"), join(dir, "tls/localhost.p12"));
  copyFileSync(join(exampleDir, "tls/localhost.p12"), join(dir, "tls/trust.p12"));
  const ca = createSelfSignedCertificate("client-ca").cert;
  writeFileSync(join(dir, "tls/clients.pem"), ca);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function load(text: string) {
  return parseConfig(text, dir, { registry, env, kafkaServers: ["127.0.0.1:9092"] });
}

async function loaded(text: string): Promise<GatewayConfig> {
  const result = await load(text);
  if (!result.ok) throw new Error(formatConfigErrors(result.errors));
  return result.config;
}

async function errorsOf(text: string): Promise<string[]> {
  const result = await load(text);
  if (result.ok) throw new Error("expected the config to be rejected");
  return formatConfigErrors(result.errors).split("\n");
}

function edit(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

/** The example with mutual TLS on 7153 and an x509 guard reading client certificates. */
const withMtls = edit(
  edit(
    edit(
      edit(
        example,
        "        password: ${{env.KEYSTORE_PASSWORD}}\n",
        "        password: ${{env.KEYSTORE_PASSWORD}}\n      trust:\n        store: tls/clients.pem\n        type: pem\n",
      ),
      "      challenge: 30\n",
      '      challenge: 30\n  certs:\n    type: x509\n    options:\n      identity: subject.cn\n      attributes:\n        org: subject.o\n      roles:\n        partner:\n          - issuer.cn: client-ca\n            subject.cn: "partner-*"\n',
    ),
    "      alpn:\n        - h2\n",
    "      alpn:\n        - h2\n      trust:\n        - client-ca\n      mutual: requested\n      authorization:\n        certs:\n          credentials:\n            certificates: pem\n",
  ),
  "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        guarded:\n",
  "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/UnaryEcho\n        guarded:\n          certs:\n            - partner\n        exit: north_kafka_cache_client\n        with:\n          capability: produce\n          topic: echo-requests\n          key: ${guarded['certs'].attributes.org}\n          reply-to: echo-responses\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        guarded:\n",
);

describe("guards in a zilla.yaml", () => {
  it("resolves the guarded example", async () => {
    const [north] = (await loaded(example)).north;
    expect(north?.listeners.map((l) => l.authorization)).toEqual([
      { guard: "jwt0", credentials: { headers: { authorization: "Bearer {credentials}" } } },
      { guard: "jwt0", credentials: { headers: { authorization: "Bearer {credentials}" } } },
    ]);
    const guard = north?.guards?.jwt0;
    expect(guard).toMatchObject({
      type: "jwt",
      issuer: "https://auth.example.com",
      audience: "https://api.example.com",
      roles: "scope",
      identity: "sub",
      challengeSeconds: 30,
    });
    expect(guard?.type === "jwt" ? guard.keys?.map((k) => k.kid) : []).toEqual([
      "example",
      "example_ec",
    ]);
    expect(north?.routes[0]?.guarded).toEqual([{ guard: "jwt0", roles: ["echo:call"] }]);
    expect(north?.routes[0]?.with).toMatchObject({
      key: "${guarded['jwt0'].identity}",
      overrides: { "meta:x-caller": "${guarded['jwt0'].identity}" },
    });
  });

  it("defaults the keys to the issuer's JWKS", async () => {
    const keys = /guards:[\s\S]*?( {6}keys:\n[\s\S]*?) {6}challenge: 30\n/.exec(example)?.[1];
    const text = edit(example, keys ?? "?", "");
    const guard = (await loaded(text)).north[0]?.guards?.jwt0;
    expect(guard).toMatchObject({ keysUrl: "https://auth.example.com/.well-known/jwks.json" });
    expect(guard && "keys" in guard ? guard.keys : undefined).toBeUndefined();
  });

  it("resolves mutual tls with an x509 guard", async () => {
    const config = await loaded(withMtls);
    const [north] = config.north;
    const tls = north?.listeners[1]?.tls;
    expect(tls?.mutual).toBe("requested");
    expect(tls?.ca).toHaveLength(1);
    expect(tls?.authorization).toEqual({ guard: "certs" });
    expect(north?.guards?.certs).toEqual({
      type: "x509",
      name: "certs",
      identity: "subject.cn",
      attributes: { org: "subject.o" },
      roles: { partner: [{ "issuer.cn": "client-ca", "subject.cn": "partner-*" }] },
    });
    expect(formatPipelines(config)).toContain("client certificates requested (1 CA) → guard certs");
    // trust without mutual: Zilla's default is required.
    const required = await loaded(edit(withMtls, "      mutual: requested\n", ""));
    expect(required.north[0]?.listeners[1]?.tls?.mutual).toBe("required");
  });

  it("reads header, query and cookie credentials and guarded grpc server routes", async () => {
    let text = edit(
      example,
      "              authorization: Bearer {credentials}\n",
      '              authorization: Bearer {credentials}\n            query:\n              access_token: "{credentials}"\n            cookies:\n              session: "{credentials}"\n',
    );
    text = edit(
      text,
      "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        exit: north_grpc_kafka_mapping\n",
      "    routes:\n      - when:\n          - method: grpc.examples.echo.Echo/UnaryEcho\n        guarded:\n          jwt0: [echo:unary]\n        exit: north_grpc_kafka_mapping\n      - when:\n          - method: grpc.examples.echo.Echo/*\n        guarded:\n          jwt0: []\n        exit: north_grpc_kafka_mapping\n",
    );
    const [north] = (await loaded(text)).north;
    expect(north?.listeners[0]?.authorization?.credentials).toEqual({
      headers: { authorization: "Bearer {credentials}" },
      query: { access_token: "{credentials}" },
      cookies: { session: "{credentials}" },
    });
    expect(north?.methodGuards).toEqual([
      {
        method: "grpc.examples.echo.Echo/UnaryEcho",
        guarded: [{ guard: "jwt0", roles: ["echo:unary"] }],
      },
      { method: "grpc.examples.echo.Echo/*", guarded: [{ guard: "jwt0", roles: [] }] },
    ]);
  });
});

describe("guard mistakes", () => {
  it("reports jwt options and keys that cannot work", async () => {
    let text = edit(example, "      audience: https://api.example.com\n", "");
    text = edit(
      text,
      "          kid: example_ec\n",
      "          kid: example_ec\n        - kty: oct\n          kid: secret\n          k: c2VjcmV0\n",
    );
    text = edit(text, "          e: AQAB\n", "          e: AQAB\n          d: private\n");
    text = edit(text, "          alg: ES256\n", "          alg: RS256\n");
    expect(await errorsOf(text)).toEqual([
      'guards.jwt0.options.audience: required key "audience" is missing; add the audience (a value the aud claim of tokens must hold); without it no token is accepted',
      'guards.jwt0.options.keys[0].d: "d" is part of a private key; list only the public key (remove "d")',
      'guards.jwt0.options.keys[1].alg: "RS256" is not an algorithm for a EC key; use one of ES256, ES384, ES512',
      "guards.jwt0.options.keys[2].k: a symmetric key (kty: oct) is not accepted: whoever reads this file could mint tokens; use the issuer's public RSA, EC or OKP key",
    ]);
  });

  it("reports key material that does not import, and a guard type it does not know", async () => {
    let text = edit(
      example,
      "          y: QrTmZT097RxEvZfefMRNWJ9lgrEH0YWEvm5809ZraRU\n",
      "          y: QrTm\n",
    );
    text = edit(text, "guards:\n", "guards:\n  oauth0:\n    type: oauth\n");
    const errors = await errorsOf(text);
    expect(errors[0]).toBe(
      'guards.oauth0.type: guard type "oauth" is not supported; use type: jwt or type: x509',
    );
    expect(errors[1]).toMatch(
      /^guards\.jwt0\.options\.keys\[1\]: cannot be used as a public key \(.+\); copy the key from the issuer's JWKS again$/,
    );
  });

  it("reports credentials it cannot read and a guard of the wrong type", async () => {
    let text = edit(
      withMtls,
      "              authorization: Bearer {credentials}\n",
      "              authorization: Basic {username}:{password}\n            query:\n              token: t\n",
    );
    text = edit(
      text,
      "        certs:\n          credentials:\n            certificates: pem\n",
      "        jwt0:\n          credentials:\n            certificates: pem\n",
    );
    expect(await errorsOf(text)).toEqual([
      'bindings.north_tls_server.options.authorization.jwt0: guard "jwt0" is a jwt guard, which reads tokens; name it under the http server\'s options.authorization, and an x509 guard here',
      "bindings.north_http_server.options.authorization.jwt0.credentials.headers.authorization: Basic credentials ({username}, {password}) need a guard that checks passwords; a jwt guard takes a token: write the pattern with {credentials}",
      'bindings.north_http_server.options.authorization.jwt0.credentials.query.token: "t" must contain {credentials} once, e.g. "Bearer {credentials}"',
      'bindings.north_grpc_kafka_mapping.routes[0].guarded.certs: guard "certs" checks no call on the way here: name it under options.authorization of the http server (jwt) or the tls server (x509) in front of this proxy, or remove it',
    ]);
  });

  it("reports expressions that read a guard the route is not guarded by", async () => {
    const text = edit(
      withMtls,
      "          key: ${guarded['certs'].attributes.org}\n",
      "          key: ${guarded['jwt0'].identity}\n          overrides:\n            x-bad: ${guarded['certs'].subject}\n",
    );
    expect(await errorsOf(text)).toEqual([
      `bindings.north_grpc_kafka_mapping.routes[0].with.key: "\${guarded['jwt0'].identity}" reads guard "jwt0", which does not guard this route; add guarded: { jwt0: [] } to the route`,
      `bindings.north_grpc_kafka_mapping.routes[0].with.overrides.x-bad: "\${guarded['certs'].subject}" has a guarded expression this gateway cannot read; write \${guarded['<guard>'].identity} or \${guarded['<guard>'].attributes.<name>}`,
    ]);
  });

  it("reports mutual tls that cannot work and guards where they are not enforced", async () => {
    let text = edit(
      withMtls,
      "      trust:\n        - client-ca\n      mutual: requested\n",
      "      mutual: required\n",
    );
    text = edit(
      text,
      "    exit: north_grpc_server\n",
      "    routes:\n      - guarded:\n          jwt0: []\n        exit: north_grpc_server\n",
    );
    expect(await errorsOf(text)).toEqual(
      [
        "bindings.north_tls_server.options.mutual: mutual: required needs the CAs that client certificates must chain to; add trust: [<CA alias>] naming certificates in the vault's trust store",
        "\"guarded\" on http server routes is not supported by this gateway; guard the grpc server's or the grpc-kafka proxy's routes",
      ].map((m, i) => (i === 1 ? `bindings.north_http_server.routes[0].guarded.jwt0: ${m}` : m)),
    );
  });

  it("explains a PKCS#12 trust store", async () => {
    const text = edit(
      withMtls,
      "        store: tls/clients.pem\n        type: pem\n",
      "        store: tls/trust.p12\n",
    );
    expect(await errorsOf(text)).toEqual([
      'vaults.my_servers.options.trust.store: trust store "tls/trust.p12" is not PEM (it looks like PKCS#12, Zilla\'s default, which this runtime cannot read as trust); export its certificates with "openssl pkcs12 -in tls/trust.p12 -nokeys -out trust.pem" and use type: pem',
    ]);
  });
});
