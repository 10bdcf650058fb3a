/**
 * The echo upstream's test hooks: prefixes of a request message's text that ask for an
 * error, a delay, a longer response stream or a metadata round trip (the list is in
 * echo-server.ts). Both of the echo's paths read them here.
 */
import type { Code } from "@connectrpc/connect";

/** Messages ServerStreamingEcho sends when no `stream:<n>:` hook says otherwise. */
export const defaultStreamCount = 10;

/** What a request message's hook prefixes ask for. */
export interface EchoHooks {
  error?: { code: Code; text: string };
  delayMs?: number;
  streamCount?: number;
  meta: boolean;
}

/** Reads the hook prefixes of a request message's text. */
export function parseEchoHooks(text: string): EchoHooks {
  const hooks: EchoHooks = { meta: false };
  let rest = text;
  for (;;) {
    const error = /^error:(\d+):(.*)$/s.exec(rest);
    if (error) {
      hooks.error = { code: Number(error[1]) as Code, text: error[2] ?? "" };
      return hooks;
    }
    const numbered = /^(delay|stream):(\d+):/.exec(rest);
    if (numbered) {
      const n = Number(numbered[2]);
      if (numbered[1] === "delay") hooks.delayMs = n;
      else hooks.streamCount = n;
      rest = rest.slice(numbered[0].length);
      continue;
    }
    if (rest.startsWith("meta:")) {
      hooks.meta = true;
      rest = rest.slice("meta:".length);
      continue;
    }
    return hooks;
  }
}
