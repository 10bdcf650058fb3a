/**
 * Mints a token the example's jwt guard accepts, signed with the example's demo keys in jwt/
 * (anyone can read them: never trust them outside this example). Prints the token.
 *
 *   node examples/grpc.kafka.proxy.jwt/mint-token.mjs [--sub alice] [--scope echo:call]
 *        [--expires-in 3600] [--alg RS256|ES256] [--issuer URL] [--audience URL]
 *
 * Runs the same under Node 20+, Bun (`npx bun ...`) and Deno (`deno run -A ...`).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { importPKCS8, SignJWT } from "jose";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "alice" },
    scope: { type: "string", default: "echo:call" },
    "expires-in": { type: "string", default: "3600" },
    alg: { type: "string", default: "RS256" },
    issuer: { type: "string", default: "https://auth.example.com" },
    audience: { type: "string", default: "https://api.example.com" },
  },
});

const keys = {
  RS256: { file: "private-rs256.pem", kid: "example" },
  ES256: { file: "private-es256.pem", kid: "example_ec" },
};
const key = keys[values.alg];
if (!key) {
  console.error(`--alg: expected RS256 or ES256, got "${values.alg}"`);
  process.exit(2);
}
const pem = readFileSync(new URL(`jwt/${key.file}`, import.meta.url), "utf8");
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ scope: values.scope })
  .setProtectedHeader({ alg: values.alg, kid: key.kid, typ: "JWT" })
  .setIssuer(values.issuer)
  .setAudience(values.audience)
  .setSubject(values.sub)
  .setIssuedAt(now)
  .setExpirationTime(now + Number(values["expires-in"]))
  .sign(await importPKCS8(pem, values.alg));
console.log(token);
