/**
 * Turns one request frame into one response frame: reads the request header, picks the
 * handler by API key, checks the version, calls the handler and frames its body with the
 * right response header. Versions the broker lacks get UNSUPPORTED_VERSION.
 */

import { ApiKey } from "../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../kafka/protocol/errors.ts";
import { Reader, Writer } from "../kafka/protocol/wire.ts";
import type { ApiHandler, BrokerInfo, RequestContext, ResponseBody } from "./api.ts";
import { writeApiVersionsV0 } from "./apis/api-versions.ts";
import type { FaultState } from "./broker-faults.ts";

/** A framed response (size prefix included) as byte segments, or null for "no response". */
export type FramedResponse = Uint8Array[] | null;

/** The connection a request came in on. */
export interface RequestSource {
  connectionId: number;
  signal: AbortSignal;
  /** For log lines. */
  remote: string;
  /** Closes the connection once the current request's response (if any) is written. */
  closeAfterResponse(): void;
}

/** Decides per connection which APIs may be used yet (with SASL: none before authenticating). */
export interface RequestGate {
  /** Null when `apiKey` may be handled now on this connection, else why not. */
  refusal(apiKey: number, connectionId: number): string | null;
}

/** Routes request frames to API handlers. */
export interface Dispatcher {
  readonly handlers: readonly ApiHandler[];
  /** Handles one frame (without its size prefix); throws WireError on a malformed request. */
  dispatch(frame: Uint8Array, source: RequestSource): FramedResponse | Promise<FramedResponse>;
}

function frame(correlationId: number, flexibleHeader: boolean, body: ResponseBody): Uint8Array[] {
  const w = new Writer(256);
  const sizeAt = w.reserveInt32();
  w.int32(correlationId);
  if (flexibleHeader) w.taggedFields();
  body(w);
  w.patchInt32(sizeAt, w.length - 4);
  return w.segments();
}

/** Builds the dispatcher for a set of handlers (at most one per API key). */
export function createDispatcher(
  handlers: readonly ApiHandler[],
  broker: BrokerInfo,
  faults: FaultState,
  log: (line: string) => void,
  gate?: RequestGate,
): Dispatcher {
  const table: (ApiHandler | undefined)[] = [];
  for (const handler of handlers) {
    if (table[handler.apiKey] !== undefined) {
      throw new Error(`two handlers for API key ${handler.apiKey}`);
    }
    table[handler.apiKey] = handler;
  }
  const sorted = [...handlers].sort((a, b) => a.apiKey - b.apiKey);

  return {
    handlers,
    dispatch(bytes, source) {
      const req = new Reader(bytes);
      const apiKey = req.int16();
      const apiVersion = req.int16();
      const correlationId = req.int32();
      const clientId = req.nullableString();
      const refusal = gate?.refusal(apiKey, source.connectionId) ?? null;
      if (refusal !== null) {
        // As Kafka does: no answer (the body's layout is unknown), the connection just ends.
        log(`closing connection ${source.connectionId} from ${source.remote}: ${refusal}`);
        source.closeAfterResponse();
        return null;
      }
      const handler = apiKey >= 0 ? table[apiKey] : undefined;
      if (
        handler === undefined ||
        apiVersion < handler.minVersion ||
        apiVersion > handler.maxVersion
      ) {
        if (apiKey === ApiKey.ApiVersions) {
          // Always answerable: v0 format, so a client of any vintage can read the list.
          return frame(correlationId, false, (w) =>
            writeApiVersionsV0(w, ErrorCode.UNSUPPORTED_VERSION, sorted),
          );
        }
        log(
          `unsupported request: api key ${apiKey} v${apiVersion} from ${source.remote} (client ${clientId ?? "-"})`,
        );
        // We cannot know this body's layout; most responses put an error code where a
        // client would look first, so that is all we send.
        return frame(correlationId, false, (w) => {
          w.int16(ErrorCode.UNSUPPORTED_VERSION);
        });
      }
      const flexible = apiVersion >= handler.firstFlexibleVersion;
      if (flexible) req.taggedFields();
      const ctx: RequestContext = {
        apiKey,
        apiVersion,
        correlationId,
        clientId,
        flexible,
        connectionId: source.connectionId,
        broker,
        signal: source.signal,
        closeAfterResponse: source.closeAfterResponse,
      };
      const injected = faults.takeInjectedError(apiKey);
      if (injected !== undefined) ctx.injectedError = injected;
      const partitionFaults = faults.partitionFaults(apiKey);
      if (partitionFaults !== undefined) ctx.partitionFaults = partitionFaults;
      // ApiVersions answers with header v0 even in its flexible versions, so that a client
      // can parse it before it knows what the broker speaks.
      const flexibleHeader = flexible && apiKey !== ApiKey.ApiVersions;
      const body = handler.handle(req, ctx);
      if (body instanceof Promise) {
        return body.then((b) => (b === null ? null : frame(correlationId, flexibleHeader, b)));
      }
      return body === null ? null : frame(correlationId, flexibleHeader, body);
    },
  };
}
