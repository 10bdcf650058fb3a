/**
 * ApiVersions (v0-v3): the APIs and version ranges this broker serves. A request for a
 * version we lack gets the v0-format answer with UNSUPPORTED_VERSION and the full list,
 * so the client can retry with a version from it (librdkafka starts with v3).
 */

import { ApiKey } from "../../kafka/protocol/api-keys.ts";
import { ErrorCode } from "../../kafka/protocol/errors.ts";
import type { Writer } from "../../kafka/protocol/wire.ts";
import type { ApiHandler } from "../api.ts";

/** The v0 response body: error code and the classic array of ranges. */
export function writeApiVersionsV0(
  w: Writer,
  errorCode: number,
  handlers: readonly ApiHandler[],
): void {
  w.int16(errorCode);
  w.array(handlers, (w, h) => {
    w.int16(h.apiKey).int16(h.minVersion).int16(h.maxVersion);
  });
}

/**
 * Version ranges ApiVersions advertises instead of the served ones, per API key (tests
 * impersonate other brokers this way): a number caps the maximum (below 0: the API is left
 * out), a pair replaces the range.
 */
export type ApiVersionCaps = Readonly<Record<number, number | readonly [number, number]>>;

function advertised(
  handlers: readonly ApiHandler[],
  caps: ApiVersionCaps | undefined,
): ApiHandler[] {
  if (!caps) return [...handlers];
  const out: ApiHandler[] = [];
  for (const h of handlers) {
    const cap = caps[h.apiKey];
    if (cap === undefined) out.push(h);
    else if (typeof cap !== "number") out.push({ ...h, minVersion: cap[0], maxVersion: cap[1] });
    else if (cap >= 0) {
      const maxVersion = Math.min(h.maxVersion, cap);
      out.push({ ...h, minVersion: Math.min(h.minVersion, maxVersion), maxVersion });
    }
  }
  return out;
}

/** The ApiVersions handler; `handlers` returns every API served, itself included. */
export function createApiVersionsHandler(
  handlers: () => readonly ApiHandler[],
  caps?: ApiVersionCaps,
): ApiHandler {
  return {
    apiKey: ApiKey.ApiVersions,
    name: "ApiVersions",
    minVersion: 0,
    maxVersion: 3,
    firstFlexibleVersion: 3,
    handle(req, ctx) {
      if (ctx.apiVersion >= 3) {
        req.compactString(); // client software name
        req.compactString(); // client software version
        req.taggedFields();
      }
      const errorCode = ctx.injectedError ?? ErrorCode.NONE;
      const list = advertised(handlers(), caps).sort((a, b) => a.apiKey - b.apiKey);
      const version = ctx.apiVersion;
      return (w) => {
        if (version < 3) {
          writeApiVersionsV0(w, errorCode, list);
          if (version >= 1) w.int32(0); // throttle time
          return;
        }
        w.int16(errorCode);
        w.compactArray(list, (w, h) => {
          w.int16(h.apiKey).int16(h.minVersion).int16(h.maxVersion).taggedFields();
        });
        w.int32(0); // throttle time
        w.taggedFields();
      };
    },
  };
}
