import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { defaultStreamCount, type EchoHooks, parseEchoHooks } from "./echo-hooks.ts";
import type { BeginEchoCall, EchoRequestLog } from "./echo-server.ts";

/** The same service for every other protocol, by connect-es (see echo-server.ts). */
export function connectRoutes(begin: BeginEchoCall): (router: ConnectRouter) => void {
  const start = (ctx: HandlerContext): EchoRequestLog => {
    ctx.responseHeader.set("x-echo", "1");
    return begin(ctx.method.name, new Headers(ctx.requestHeader));
  };
  return (router) => {
    router.service(Echo, {
      async unaryEcho(req, ctx) {
        start(ctx).messages.push(req.message);
        await applyConnectHooks(req.message, ctx, true);
        return { message: req.message };
      },
      async *serverStreamingEcho(req, ctx) {
        start(ctx).messages.push(req.message);
        const hooks = await applyConnectHooks(req.message, ctx, true);
        const count = hooks.streamCount ?? defaultStreamCount;
        for (let i = 0; i < count; i++) yield { message: req.message };
      },
      async clientStreamingEcho(reqs, ctx) {
        const log = start(ctx);
        for await (const req of reqs) {
          log.messages.push(req.message);
          await applyConnectHooks(req.message, ctx, log.messages.length === 1);
        }
        return { message: log.messages.join(",") };
      },
      async *bidirectionalStreamingEcho(reqs, ctx) {
        const log = start(ctx);
        for await (const req of reqs) {
          log.messages.push(req.message);
          await applyConnectHooks(req.message, ctx, log.messages.length === 1);
          yield { message: req.message };
        }
      },
    });
  };
}

/** Applies delay and error hooks, then the metadata hook (headers must precede the first message). */
async function applyConnectHooks(
  text: string,
  ctx: HandlerContext,
  first: boolean,
): Promise<EchoHooks> {
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
