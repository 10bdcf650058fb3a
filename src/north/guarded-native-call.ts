/**
 * The native gRPC path's step through a listener's call gate: the stream waits (paused) while
 * the gate checks the caller, then either gets the gate's status or becomes a call on the
 * route the gate chose, watched for the credentials' expiry.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { Code } from "@connectrpc/connect";
import type { GrpcKafkaRoute, ProduceWith } from "../config/types.ts";
import type { CallGate } from "./authorize.ts";
import { connectionOfStream } from "./connection-info.ts";
import { noRouteError } from "./north-error.ts";
import type { ProduceCallInit } from "./produce-call.ts";
import { type MetadataLookup, whenMatches } from "./route-match.ts";

export interface NativeAdmission {
  /** "pkg.Service/Method". */
  method: string;
  lookup: MetadataLookup;
  /** The call as it starts when admitted (route, identities and metadata are the gate's). */
  init: Omit<ProduceCallInit, "sink" | "route">;
  start(init: Omit<ProduceCallInit, "sink">): { abort(code: Code, message: string): void };
  respondStatus(code: Code, message: string): void;
}

/** Whether any route for the call (whoever calls) is a fetch route, which connect-es serves. */
export function mayFetch(
  routes: readonly GrpcKafkaRoute[],
  method: string,
  lookup: MetadataLookup,
): boolean {
  return routes.some(
    (r) =>
      r.with.capability === "fetch" &&
      (r.when.length === 0 || r.when.some((w) => whenMatches(w, method, lookup))),
  );
}

/** Admits the call through the gate, then starts it or answers with the gate's status. */
export function admitNativeCall(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  gate: CallGate,
  call: NativeAdmission,
): void {
  // Nothing is read until the caller is known; the client's messages wait in flow control.
  stream.pause();
  const startedAt = Date.now();
  const request = {
    method: call.method,
    path: String(headers[":path"] ?? ""),
    get: call.lookup.get,
    header: (name: string) => call.lookup.get(name) ?? undefined,
  };
  gate.admit(connectionOfStream(stream), request).then(
    (admission) => {
      if (stream.closed || stream.destroyed) return;
      if (!admission.ok) {
        const error = admission.error ?? noRouteError(call.method);
        call.respondStatus(error.code, error.rawMessage);
        return;
      }
      const init = call.init;
      // The time the gate took (a key fetch, at worst) counts against the client's deadline.
      const timeoutMs =
        init.timeoutMs === undefined ? undefined : init.timeoutMs - (Date.now() - startedAt);
      if (timeoutMs !== undefined && timeoutMs <= 0) {
        call.respondStatus(Code.DeadlineExceeded, "deadline exceeded");
        return;
      }
      const started = call.start({
        ...init,
        route: admission.with as ProduceWith,
        metadata: gate.metadataOf(init.metadata),
        identities: admission.identities,
        timeoutMs,
      });
      const unwatch = admission.watch((code, message) => started.abort(code, message));
      stream.once("close", unwatch);
      stream.resume();
    },
    (error: unknown) => {
      if (stream.closed || stream.destroyed) return;
      call.respondStatus(Code.Internal, `authorization failed: ${(error as Error).message}`);
    },
  );
}
