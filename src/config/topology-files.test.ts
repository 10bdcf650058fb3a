// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${{env.NAME}} is zilla.yaml text here, not a template.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  editExample,
  exampleEnv,
  exampleYaml,
  problemsOf,
  topologyContextOf,
} from "../../test/support/topology-context.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "topology-files-"));
  await writeFile(join(dir, "empty.pem"), "no certificate here\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("files a config names", () => {
  it("reads the services a catalog's proto declares and the keystore's aliases", async () => {
    const ctx = await topologyContextOf(exampleYaml);
    expect(ctx.protoServices.get("host_filesystem/echo")).toEqual(["grpc.examples.echo.Echo"]);
    const [store] = ctx.stores.values();
    expect(store?.kind === "pkcs12" && store.aliases).toEqual(["localhost"]);
    expect(problemsOf(ctx)).toEqual([]);
  });

  it("reports a missing proto with where it was looked for", async () => {
    const ctx = await topologyContextOf(
      editExample(["path: proto/echo.proto", "path: proto/nope.proto"]),
    );
    expect(problemsOf(ctx).join("\n")).toMatch(
      /catalogs\.host_filesystem\.options\.subjects\.echo.*file "proto\/nope\.proto" does not exist \(looked for .*proto\/nope\.proto\)/,
    );
  });

  it("reports a keystore opened with the wrong password at the password, naming its variable", async () => {
    const ctx = await topologyContextOf(exampleYaml, {
      env: { ...exampleEnv, KEYSTORE_PASSWORD: "wrong" },
    });
    expect(problemsOf(ctx).join("\n")).toMatch(
      /vaults\.my_servers\.options\.keys\.password: wrong password for keystore \S*tls\/localhost\.p12 \(the password comes from environment variable KEYSTORE_PASSWORD\); set KEYSTORE_PASSWORD to the keystore's password/,
    );
  });

  it("reports a PEM trust store without a certificate", async () => {
    const ctx = await topologyContextOf(
      editExample([
        "        password: ${{env.KEYSTORE_PASSWORD}}\n",
        `        password: \${{env.KEYSTORE_PASSWORD}}\n      trust:\n        store: ${join(dir, "empty.pem")}\n        type: pem\n`,
      ]),
    );
    expect(problemsOf(ctx).join("\n")).toContain("holds no PEM certificate");
  });
});
