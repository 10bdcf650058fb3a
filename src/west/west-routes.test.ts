import { describe, expect, it } from "vitest";
import type { KafkaGrpcRoute } from "../config/types.ts";
import { matchWestRoute, westTopics } from "./west-routes.ts";

const upstream = { scheme: "http", authority: "127.0.0.1:1" } as const;
const routes: KafkaGrpcRoute[] = [
  {
    when: [
      {
        topic: "requests",
        replyTo: "replies",
        key: "k1",
        headers: { tenant: "a" },
        method: "pkg.Svc/One",
      },
    ],
    with: { ...upstream, authority: "first:1" },
  },
  {
    when: [{ topic: "requests", replyTo: "replies", method: "pkg.Svc/*" }],
    with: { ...upstream, authority: "second:1" },
  },
  { when: [{ topic: "other", replyTo: "other-replies" }], with: upstream },
];

const base = {
  topic: "requests",
  key: "k1",
  headers: [["tenant", "a"]] as [string, string][],
  replyTo: "replies",
  service: "pkg.Svc",
  method: "One",
};

describe("matchWestRoute", () => {
  it("takes the first route whose key, headers and method all match", () => {
    expect(matchWestRoute(routes, base)?.with.authority).toBe("first:1");
  });

  it("falls through when a condition differs", () => {
    expect(matchWestRoute(routes, { ...base, key: "k2" })?.with.authority).toBe("second:1");
    expect(matchWestRoute(routes, { ...base, headers: [["tenant", "b"]] })?.with.authority).toBe(
      "second:1",
    );
    expect(matchWestRoute(routes, { ...base, method: "Two" })?.with.authority).toBe("second:1");
  });

  it("requires topic and reply-to", () => {
    expect(matchWestRoute(routes, { ...base, replyTo: "elsewhere" })).toBeUndefined();
    expect(matchWestRoute(routes, { ...base, replyTo: undefined })).toBeUndefined();
    expect(matchWestRoute(routes, { ...base, service: "pkg.Other" })).toBeUndefined();
  });

  it("can ignore method conditions for records without service and method", () => {
    const bare = { ...base, service: undefined, method: undefined };
    expect(matchWestRoute(routes, bare)).toBeUndefined();
    expect(matchWestRoute(routes, bare, true)?.with.authority).toBe("first:1");
  });
});

describe("westTopics", () => {
  it("lists each consumed topic once", () => {
    expect(westTopics(routes)).toEqual(["requests", "other"]);
  });
});
