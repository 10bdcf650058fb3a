/**
 * The example upstream: `grpc.examples.echo.Echo` over h2c (SPEC §9), with test hooks in
 * the request text so scenarios can ask for errors, delays and metadata round trips
 * without a second server. It records what it received so tests can assert on it.
 *
 * Hooks, read from the start of each request message's text, in any order:
 * - `error:<code>:<text>` fail the call with that gRPC code and message;
 * - `delay:<ms>:` wait first (a cancelled call stops waiting);
 * - `stream:<n>:` ServerStreamingEcho sends n messages instead of 10;
 * - `meta:` copy every `x-*` request metadata entry into the response headers and set
 *   trailer `x-trailer: t`.
 * Responses echo the request text unchanged, hooks included.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";

export interface EchoRequestLog {
  /** Simple method name, e.g. "UnaryEcho". */
  method: string;
  headers: Headers;
  /** Request message texts, appended as they arrive. */
  messages: string[];
}

export interface EchoServer {
  port: number;
  /** Calls received per simple method name. */
  calls: Map<string, number>;
  requests: EchoRequestLog[];
  close(): Promise<void>;
}

const defaultStreamCount = 10;

interface Hooks {
  error?: { code: Code; text: string };
  delayMs?: number;
  streamCount?: number;
  meta: boolean;
}

/** Reads the hook prefixes of a request message's text. */
export function parseEchoHooks(text: string): Hooks {
  const hooks: Hooks = { meta: false };
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

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new ConnectError("cancelled", Code.Canceled));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ConnectError("cancelled", Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Applies delay and error hooks, then the metadata hook (headers must precede the first message). */
async function applyHooks(text: string, ctx: HandlerContext, first: boolean): Promise<Hooks> {
  const hooks = parseEchoHooks(text);
  if (hooks.delayMs !== undefined) await sleep(hooks.delayMs, ctx.signal);
  if (hooks.meta && first) {
    ctx.requestHeader.forEach((value, name) => {
      if (name.startsWith("x-")) ctx.responseHeader.append(name, value);
    });
    ctx.responseTrailer.set("x-trailer", "t");
  }
  if (hooks.error) throw new ConnectError(hooks.error.text, hooks.error.code);
  return hooks;
}

/** Starts the echo upstream on h2c; `port` 0 (default) picks a free port. */
export async function startEchoServer(
  opts: { host?: string; port?: number } = {},
): Promise<EchoServer> {
  const calls = new Map<string, number>();
  const requests: EchoRequestLog[] = [];

  const begin = (ctx: HandlerContext): EchoRequestLog => {
    calls.set(ctx.method.name, (calls.get(ctx.method.name) ?? 0) + 1);
    const log: EchoRequestLog = {
      method: ctx.method.name,
      headers: new Headers(ctx.requestHeader),
      messages: [],
    };
    requests.push(log);
    ctx.responseHeader.set("x-echo", "1");
    return log;
  };

  const routes = (router: ConnectRouter) => {
    router.service(Echo, {
      async unaryEcho(req, ctx) {
        begin(ctx).messages.push(req.message);
        await applyHooks(req.message, ctx, true);
        return { message: req.message };
      },
      async *serverStreamingEcho(req, ctx) {
        begin(ctx).messages.push(req.message);
        const hooks = await applyHooks(req.message, ctx, true);
        const count = hooks.streamCount ?? defaultStreamCount;
        for (let i = 0; i < count; i++) yield { message: req.message };
      },
      async clientStreamingEcho(reqs, ctx) {
        const log = begin(ctx);
        for await (const req of reqs) {
          log.messages.push(req.message);
          await applyHooks(req.message, ctx, log.messages.length === 1);
        }
        return { message: log.messages.join(",") };
      },
      async *bidirectionalStreamingEcho(reqs, ctx) {
        const log = begin(ctx);
        for await (const req of reqs) {
          log.messages.push(req.message);
          await applyHooks(req.message, ctx, log.messages.length === 1);
          yield { message: req.message };
        }
      },
    });
  };

  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    calls,
    requests,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        // Open client sessions would keep the server alive; tests want it gone now.
        for (const session of sessions) session.destroy();
      });
    },
  };
}
