/**
 * gRPC-Web's text mode (`application/grpc-web-text`, what the grpc-web JavaScript client
 * sends by default): the frames of binary gRPC-Web, base64-encoded both ways. connect-es
 * answers it with 415, so a text request is turned into a binary one in place: the body is
 * decoded as it is read and the content type made binary; the response is labelled text
 * again and each chunk written is base64-encoded (padded per chunk, which gRPC-Web text
 * decoders accept, so streamed messages are not held back).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

const textContentType = /^application\/grpc-web-text(?=$|[+;])/i;

/** Whether a content type is gRPC-Web text. */
export function isGrpcWebText(contentType: string | undefined): boolean {
  return contentType !== undefined && textContentType.test(contentType);
}

/**
 * If the request is gRPC-Web text, rewrites `req` and `res` so that the handler behind them
 * sees binary gRPC-Web and the client gets text back; otherwise leaves them alone.
 */
export function adaptGrpcWebText(
  req: Http2ServerRequest | IncomingMessage,
  res: Http2ServerResponse | ServerResponse,
): void {
  const contentType = req.headers["content-type"];
  if (!isGrpcWebText(contentType)) return;
  req.headers["content-type"] = (contentType as string).replace(
    textContentType,
    "application/grpc-web",
  );

  const readRaw = req[Symbol.asyncIterator].bind(req);
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* decodedBody(): AsyncGenerator<Uint8Array> {
      const decoder = createBase64Decoder();
      for await (const chunk of { [Symbol.asyncIterator]: readRaw }) {
        const bytes = decoder.push(chunk as Buffer | string);
        if (bytes.byteLength > 0) yield bytes;
      }
      decoder.end();
    },
  });

  const out = res as ServerResponse;
  const writeHead = out.writeHead.bind(out) as (...args: unknown[]) => ServerResponse;
  out.writeHead = ((...args: unknown[]) => {
    for (const arg of args) {
      if (typeof arg === "object" && arg !== null && !Array.isArray(arg)) {
        const headers = arg as Record<string, unknown>;
        for (const name of Object.keys(headers)) {
          const lower = name.toLowerCase();
          if (lower === "content-length") delete headers[name];
          else if (lower === "content-type") headers[name] = textResponseType(headers[name]);
        }
      }
    }
    out.removeHeader("content-length");
    const type = out.getHeader("content-type");
    if (type !== undefined) out.setHeader("content-type", textResponseType(type));
    return writeHead(...args);
  }) as typeof out.writeHead;

  const write = out.write.bind(out) as (...args: unknown[]) => boolean;
  out.write = ((chunk: unknown, ...rest: unknown[]) =>
    write(encodeChunk(chunk), ...rest.filter((a) => typeof a === "function"))) as typeof out.write;
  const end = out.end.bind(out) as (...args: unknown[]) => ServerResponse;
  out.end = ((...args: unknown[]) => {
    if (typeof args[0] === "function" || args[0] === undefined) return end(...args);
    const [chunk, ...rest] = args;
    return end(encodeChunk(chunk), ...rest.filter((a) => typeof a === "function"));
  }) as typeof out.end;
}

function textResponseType(value: unknown): string {
  return String(value).replace(/^application\/grpc-web(?!-text)/i, "application/grpc-web-text");
}

function encodeChunk(chunk: unknown): Buffer {
  const bytes =
    typeof chunk === "string"
      ? Buffer.from(chunk, "latin1")
      : Buffer.from(
          (chunk as Uint8Array).buffer,
          (chunk as Uint8Array).byteOffset,
          (chunk as Uint8Array).byteLength,
        );
  return Buffer.from(bytes.toString("base64"), "latin1");
}

interface Base64Decoder {
  /** Decodes every complete 4-character group received so far. */
  push(chunk: Buffer | string): Uint8Array;
  /** Throws if the body ended inside a group. */
  end(): void;
}

/**
 * A streaming base64 decoder that accepts padding between groups, since gRPC-Web text
 * senders may encode each chunk separately. Whitespace is ignored.
 */
export function createBase64Decoder(): Base64Decoder {
  let pending = "";
  return {
    push(chunk) {
      const text =
        pending + (typeof chunk === "string" ? chunk : chunk.toString("latin1")).replace(/\s/g, "");
      const whole = text.length - (text.length % 4);
      pending = text.slice(whole);
      const parts: Buffer[] = [];
      let start = 0;
      // Node stops decoding at the first "=", so decode up to each padded group separately.
      while (start < whole) {
        const pad = text.indexOf("=", start);
        const stop = pad < 0 || pad >= whole ? whole : Math.ceil((pad + 1) / 4) * 4;
        const group = text.slice(start, stop);
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(group)) {
          throw new ConnectError(
            "grpc-web-text: the request body is not base64",
            Code.InvalidArgument,
          );
        }
        parts.push(Buffer.from(group, "base64"));
        start = stop;
      }
      return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    },
    end() {
      if (pending !== "") {
        throw new ConnectError(
          "grpc-web-text: the request body ends inside a base64 group",
          Code.InvalidArgument,
        );
      }
    },
  };
}
