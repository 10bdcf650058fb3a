import { describe, expect, it } from "vitest";
import {
  type ChangelogEntry,
  decodeEntry,
  decodeEntryHead,
  encodeEntry,
  entryParts,
  entryVersion,
  leaseEntry,
  leaseKey,
} from "./changelog-codec.ts";

const id = "key-1-0123456789abcdef0123456789abcdef";

describe("changelog entries", () => {
  it("round-trips STARTED and ABORTED with their flags, offset and attempt", () => {
    for (const entry of [
      { kind: "started", keyed: true, requestEnded: false, requestOffset: 0n, attempt: 1 },
      { kind: "aborted", keyed: false, requestEnded: true, requestOffset: 2n ** 40n, attempt: 3 },
    ] satisfies ChangelogEntry[]) {
      const bytes = encodeEntry(entry);
      expect(decodeEntry(bytes, id)).toEqual(entry);
      expect(decodeEntryHead(bytes)).toEqual(entry);
    }
  });

  it("round-trips a LEASE, whose reader before it skips it as an unknown kind", () => {
    const bytes = encodeEntry(leaseEntry(2n ** 33n + 5n));
    expect(decodeEntryHead(bytes)).toEqual({
      kind: "lease",
      keyed: false,
      requestEnded: false,
      requestOffset: 2n ** 33n + 5n,
      attempt: 0,
    });
    expect(decodeEntry(bytes, leaseKey)?.kind).toBe("lease");
    expect(bytes[1]).toBe(4);
    // An earlier gateway knew kinds 1 to 3 only and skips the rest, as this one does past 4.
    const later = encodeEntry(leaseEntry(1n));
    later[1] = 5;
    expect(decodeEntryHead(later)).toBeUndefined();
    expect(leaseKey).toBe("");
  });

  it("round-trips FINISHED with every reply record inline", () => {
    const entry: ChangelogEntry = {
      kind: "finished",
      keyed: true,
      requestEnded: true,
      requestOffset: 41n,
      attempt: 2,
      reply: {
        status: 0,
        replyBytes: 123,
        replyTo: "echo-responses",
        records: [
          {
            key: id,
            value: Uint8Array.from([0x0a, 0x02, 0x68, 0x69]),
            headers: [
              ["zilla:correlation-id", id],
              ["meta:x-echo", "ü 1"],
            ],
          },
          { key: id, value: new Uint8Array(0), headers: [] },
          {
            key: id,
            value: null,
            headers: [
              ["zilla:correlation-id", id],
              ["zilla:status", "0"],
            ],
          },
        ],
      },
    };
    expect(decodeEntry(encodeEntry(entry), id)).toEqual(entry);
  });

  it("keeps a large reply value as a piece of its own, the same bytes as the joined entry", () => {
    const large = Uint8Array.from({ length: 10_240 }, (_, i) => (i * 29) & 0xff);
    const small = Uint8Array.from({ length: 511 }, (_, i) => i & 0xff);
    const entry: ChangelogEntry = {
      kind: "finished",
      keyed: true,
      requestEnded: true,
      requestOffset: 7n,
      attempt: 1,
      reply: {
        status: 0,
        replyBytes: 10_800,
        replyTo: "echo-responses",
        records: [
          { key: id, value: large, headers: [["zilla:correlation-id", id]] },
          { key: id, value: small, headers: [] },
          { key: id, value: null, headers: [["zilla:status", "0"]] },
        ],
      },
    };
    const parts = entryParts(entry);
    // the 10 KiB value is the caller's array itself; the 511 bytes are copied in
    expect(parts.filter((p) => p === large)).toHaveLength(1);
    expect(parts.some((p) => p.buffer === small.buffer)).toBe(false);
    const joined = encodeEntry(entry);
    expect(joined.length).toBe(parts.reduce((n, p) => n + p.length, 0));
    expect(decodeEntry(joined, id)).toEqual(entry);
    // the pieces outlive the next entry written through the same scratch buffer
    const before = Buffer.concat(parts);
    encodeEntry({ ...entry, requestOffset: 99n, attempt: 5 });
    expect(Buffer.concat(parts).equals(before)).toBe(true);
  });

  it("round-trips FINISHED without the reply kept, and its head alone", () => {
    const entry: ChangelogEntry = {
      kind: "finished",
      keyed: false,
      requestEnded: false,
      requestOffset: 7n,
      attempt: 1,
      reply: { status: 13, replyBytes: 9_000_000, replyTo: "r", records: undefined },
    };
    const bytes = encodeEntry(entry);
    expect(decodeEntry(bytes, id)).toEqual(entry);
    const { reply: _reply, ...head } = entry;
    expect(decodeEntryHead(bytes)).toEqual(head);
  });

  it("skips entries of a later version and unknown kinds; throws on cut bytes", () => {
    const bytes = encodeEntry({
      kind: "started",
      keyed: true,
      requestEnded: true,
      requestOffset: 5n,
      attempt: 1,
    });
    const later = bytes.slice();
    later[0] = entryVersion + 1;
    expect(decodeEntry(later, id)).toBeUndefined();
    expect(decodeEntryHead(later)).toBeUndefined();
    const unknown = bytes.slice();
    unknown[1] = 9;
    expect(decodeEntryHead(unknown)).toBeUndefined();
    expect(() => decodeEntryHead(bytes.subarray(0, 6))).toThrow();
  });

  it("needs a reply for FINISHED", () => {
    expect(() =>
      encodeEntry({
        kind: "finished",
        keyed: true,
        requestEnded: true,
        requestOffset: 0n,
        attempt: 1,
      }),
    ).toThrow(/needs its reply/);
  });
});
