/**
 * Zilla's challenge response: an empty `POST` with content type
 * `application/x-challenge-response` carries fresh credentials on a connection, and moves the
 * expiry of that caller's open calls on the connection later. Answered 204 whatever the
 * credentials were (as Zilla does); a refused token simply extends nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { CallGate } from "./authorize.ts";
import { connectionOfRequest } from "./connection-info.ts";

export const challengeResponseContentType = "application/x-challenge-response";

/** Answers a challenge response (true), or leaves the request alone (false). */
export function answerChallengeResponse(
  gate: CallGate | undefined,
  req: Http2ServerRequest | IncomingMessage,
  res: Http2ServerResponse | ServerResponse,
): boolean {
  if (!gate || req.method !== "POST") return false;
  if (req.headers["content-type"] !== challengeResponseContentType) return false;
  req.resume();
  const header = (name: string) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  };
  const answer = () => {
    res.writeHead(204);
    res.end();
  };
  gate.reauthorize(connectionOfRequest(req), { header, path: req.url ?? "" }).then(answer, answer);
  return true;
}
