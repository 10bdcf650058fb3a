/**
 * connect-es served to Node's request/response objects, as `connectNodeAdapter` does, with
 * one answer changed: a Connect unary request whose binary body is not a valid message.
 * connect-es reports every binary parse failure as `internal` (HTTP 500), which is right for
 * a reply a client cannot read but wrong for a request the server cannot: the caller sent
 * bad bytes, so it gets `invalid_argument` (HTTP 400), as a JSON body that does not parse
 * already does.
 */
import { Code, ConnectError, type ConnectRouter, createConnectRouter } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  type ConnectNodeAdapterOptions,
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

type NodeHandler = ReturnType<typeof import("@connectrpc/connect-node").connectNodeAdapter>;

/** A request handler for the routes `routes` registers (see connectNodeAdapter's options). */
export function createNorthConnectHandler(
  options: ConnectNodeAdapterOptions & { routes: (router: ConnectRouter) => void },
): NodeHandler {
  const router = createConnectRouter({
    ...options,
    acceptCompression: options.acceptCompression ?? [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const byPath = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = byPath.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (!handler) {
      if (options.fallback) options.fallback(req, res);
      else {
        res.writeHead(404);
        res.end();
      }
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
    handler(uReq)
      .then(async (uRes) =>
        universalResponseToNodeResponse(await requestParseErrorAsInvalid(uRes), res),
      )
      .catch((reason: unknown) => {
        // A client that went away aborts its call; there is nothing left to answer.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        res.destroy();
      });
  };
}

/** A Connect unary `internal` answer for an unparsable binary request, as `invalid_argument`. */
async function requestParseErrorAsInvalid(
  uRes: UniversalServerResponse,
): Promise<UniversalServerResponse> {
  // Connect unary errors are one uncompressed JSON body; nothing else is touched.
  if (uRes.status !== 500 || uRes.body === undefined) return uRes;
  const header = new Headers(uRes.header);
  if (header.get("content-type") !== "application/json" || header.has("content-encoding")) {
    return uRes;
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of uRes.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const unchanged = {
    ...uRes,
    body: (async function* () {
      yield bytes;
    })(),
  };
  let error: { code?: unknown; message?: unknown };
  try {
    error = JSON.parse(bytes.toString("utf8")) as typeof error;
  } catch {
    return unchanged;
  }
  if (error.code !== "internal" || typeof error.message !== "string") return unchanged;
  if (!error.message.startsWith("parse binary:")) return unchanged;
  const body = Buffer.from(
    JSON.stringify({ ...error, code: "invalid_argument", message: `request ${error.message}` }),
  );
  header.set("content-length", String(body.byteLength));
  return {
    ...uRes,
    status: 400,
    header,
    body: (async function* () {
      yield new Uint8Array(body);
    })(),
  };
}
