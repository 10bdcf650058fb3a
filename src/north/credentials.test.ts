import { describe, expect, it } from "vitest";
import { createCredentialReader } from "./credentials.ts";

const request = (headers: Record<string, string>, path = "/pkg.S/M") => ({
  header: (name: string) => headers[name],
  path,
});

describe("credentials", () => {
  const reader = createCredentialReader({
    headers: { authorization: "Bearer {credentials}" },
    query: { access_token: "{credentials}" },
    cookies: { session: "{credentials}" },
  });

  it("reads cookies, then headers, then the query (Zilla's order)", () => {
    expect(reader.read(request({ cookie: "a=1; session=c1", authorization: "Bearer h1" }))).toBe(
      "c1",
    );
    expect(reader.read(request({ authorization: "Bearer h1" }, "/p?access_token=q1"))).toBe("h1");
    expect(reader.read(request({}, "/p?x=1&access_token=q1"))).toBe("q1");
    expect(reader.read(request({}))).toBeUndefined();
  });

  it("matches the scheme case-insensitively and nothing else", () => {
    expect(reader.read(request({ authorization: "bearer  t.t.t" }))).toBe("t.t.t");
    expect(reader.read(request({ authorization: "Basic dXNlcjpwdw==" }))).toBeUndefined();
    expect(reader.read(request({ authorization: "Bearer" }))).toBeUndefined();
  });

  it("keeps the token out of the metadata written to Kafka", () => {
    expect(
      reader.withoutCredentials([
        ["authorization", "Bearer t"],
        ["cookie", "a=1; session=secret; b=2"],
        ["x-request", "r1"],
      ]),
    ).toEqual([
      ["cookie", "a=1; b=2"],
      ["x-request", "r1"],
    ]);
  });

  it("says what a client should send", () => {
    expect(reader.expected).toBe(
      'header "authorization: Bearer <token>" or query parameter "access_token" or cookie "session"',
    );
  });
});
