import { describe, expect, test } from "vitest";
import { parseGrpcTimeout } from "./deadline.ts";
import { FrameTooLargeError, GrpcFrameReader, grpcFrame, grpcFrames } from "./framing.ts";
import { isGrpcProtoContentType } from "./metadata.ts";
import { encodeGrpcMessage } from "./status.ts";

describe("isGrpcProtoContentType", () => {
  test("gRPC with protobuf only", () => {
    expect(isGrpcProtoContentType("application/grpc")).toBe(true);
    expect(isGrpcProtoContentType("application/grpc+proto")).toBe(true);
    expect(isGrpcProtoContentType("Application/GRPC; charset=utf-8")).toBe(true);
    expect(isGrpcProtoContentType("application/grpc+json")).toBe(false);
    expect(isGrpcProtoContentType("application/grpc-web+proto")).toBe(false);
    expect(isGrpcProtoContentType("application/proto")).toBe(false);
    expect(isGrpcProtoContentType(undefined)).toBe(false);
  });
});

describe("parseGrpcTimeout", () => {
  test("every unit", () => {
    expect(parseGrpcTimeout("2H")).toBe(7_200_000);
    expect(parseGrpcTimeout("3M")).toBe(180_000);
    expect(parseGrpcTimeout("4S")).toBe(4_000);
    expect(parseGrpcTimeout("300m")).toBe(300);
    expect(parseGrpcTimeout("1500u")).toBe(1.5);
    expect(parseGrpcTimeout("2000000n")).toBe(2);
  });

  test("absent is undefined, malformed is NaN", () => {
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    expect(parseGrpcTimeout("123456789S")).toBeNaN(); // more than 8 digits
    expect(parseGrpcTimeout("10")).toBeNaN();
    expect(parseGrpcTimeout("1.5S")).toBeNaN();
    expect(parseGrpcTimeout("-1S")).toBeNaN();
  });
});

describe("GrpcFrameReader", () => {
  const bytes = (...values: number[]) => new Uint8Array(values);

  test("messages split across chunks and several in one chunk", () => {
    const reader = new GrpcFrameReader(100);
    const body = new Uint8Array([
      ...grpcFrame(bytes(1, 2, 3)),
      ...grpcFrame(bytes()),
      ...grpcFrame(bytes(9)),
    ]);
    expect(reader.push(body.subarray(0, 4))).toEqual([]);
    expect(reader.buffered).toBe(4);
    const first = reader.push(body.subarray(4, 12));
    expect(first.map((f) => [...f.bytes])).toEqual([[1, 2, 3]]);
    const rest = reader.push(body.subarray(12));
    expect(rest.map((f) => [...f.bytes])).toEqual([[], [9]]);
    expect(reader.buffered).toBe(0);
  });

  test("the compressed flag is reported", () => {
    const reader = new GrpcFrameReader(100);
    const frame = grpcFrame(bytes(7));
    frame[0] = 1;
    expect(reader.push(frame)).toEqual([{ compressed: true, bytes: bytes(7) }]);
  });

  test("a message over the limit is refused from its prefix alone", () => {
    const reader = new GrpcFrameReader(10);
    const prefix = new Uint8Array(5);
    new DataView(prefix.buffer).setUint32(1, 11);
    expect(() => reader.push(prefix)).toThrow(FrameTooLargeError);
    // also when the prefix itself arrives in pieces
    const split = new GrpcFrameReader(10);
    expect(split.push(prefix.subarray(0, 2))).toEqual([]);
    expect(() => split.push(prefix.subarray(2))).toThrow(FrameTooLargeError);
  });

  test("reads the same messages whatever the chunk size, down to one byte", () => {
    const messages = [bytes(1, 2, 3), bytes(), new Uint8Array(300).fill(5), bytes(9)];
    const body = grpcFrames(messages, 0, 1 << 20).bytes;
    for (const size of [1, 2, 3, 4, 5, 6, 7, 64, 299, 305, body.byteLength]) {
      const reader = new GrpcFrameReader(1000);
      const out: number[][] = [];
      for (let at = 0; at < body.byteLength; at += size) {
        for (const f of reader.push(body.subarray(at, at + size))) out.push([...f.bytes]);
      }
      expect(out).toEqual(messages.map((m) => [...m]));
      expect(reader.buffered).toBe(0);
    }
  });

  test("a message in many chunks is copied together once, when its last byte is in", () => {
    const size = 4 * 1024 * 1024;
    const body = grpcFrame(new Uint8Array(size).fill(3));
    const reader = new GrpcFrameReader(size);
    const set = Uint8Array.prototype.set;
    let copied = 0;
    Uint8Array.prototype.set = function (
      this: Uint8Array,
      source: ArrayLike<number>,
      offset?: number,
    ) {
      copied += source.length;
      return set.call(this, source, offset);
    };
    let frames: ReturnType<GrpcFrameReader["push"]> = [];
    try {
      for (let at = 0; at < body.byteLength; at += 16_384) {
        frames = reader.push(body.subarray(at, at + 16_384));
        if (at + 16_384 < body.byteLength) expect(frames).toEqual([]);
      }
    } finally {
      Uint8Array.prototype.set = set;
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]?.bytes.byteLength).toBe(size);
    expect(frames[0]?.bytes.every((b) => b === 3)).toBe(true);
    // once: the whole body, not the sum of what was held at every chunk (about 512 MiB)
    expect(copied).toBe(body.byteLength);
  });
});

describe("encodeGrpcMessage", () => {
  test("printable ASCII stays, the rest and % are percent-encoded as UTF-8", () => {
    expect(encodeGrpcMessage("not ready yet")).toBe("not ready yet");
    expect(encodeGrpcMessage("100% done")).toBe("100%25 done");
    expect(encodeGrpcMessage("café\n")).toBe("caf%C3%A9%0A");
  });
});

describe("grpcFrames", () => {
  test("frames several messages into one buffer, as many as fit, and reads back the same", () => {
    const [a, b, c] = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(10).fill(7)];
    const messages = [a, b, c];
    const all = grpcFrames(messages, 0, 1024);
    expect(all.next).toBe(3);
    expect(all.bytes).toEqual(new Uint8Array([...grpcFrame(a), ...grpcFrame(b), ...grpcFrame(c)]));
    const frames = new GrpcFrameReader(1024).push(all.bytes);
    expect(frames.map((f) => [...f.bytes])).toEqual(messages.map((m) => [...m]));
    // 8 + 5 bytes fit in 13; the third (15 bytes) does not.
    expect(grpcFrames(messages, 0, 13).next).toBe(2);
    // One message always goes, even past the limit.
    expect(grpcFrames(messages, 2, 1)).toEqual({ bytes: grpcFrame(c), next: 3 });
  });
});
