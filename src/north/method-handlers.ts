/**
 * connect-es handlers for every served method: the path for gRPC-Web, Connect (binary and
 * JSON) and fetch routes (plain gRPC has a leaner path, grpc-stream-handler.ts). connect-es
 * decodes the request into the generated message; the handler re-encodes it with `toBinary`
 * (unknown fields kept), so every protocol writes the same request record. All four
 * streaming kinds run through the same call; only the shape at the edge differs.
 */
import { type DescMethod, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  type HandlerContext,
  type MethodImpl,
} from "@connectrpc/connect";
import type { FetchWith, GrpcKafkaRoute, ProduceWith } from "../config/types.ts";
import { statusOk } from "../grpc/status.ts";
import type { Admitted, CallGate, ConnectionInfo } from "./authorize.ts";
import type { FetchCapability } from "./fetch/fetch-capability.ts";
import { connectErrorFromAbort, noRouteError } from "./north-error.ts";
import {
  type CallDeps,
  type MetadataEntries,
  type ProduceCall,
  type ReplySink,
  startProduceCall,
} from "./produce-call.ts";
import { createReplyQueue } from "./reply-queue.ts";
import { matchRoute } from "./route-match.ts";

/**
 * Request metadata in the order received, set by the server adapter from the raw request
 * headers (connect-es' `Headers` would sort names and join repeated entries).
 */
export const rawMetadataKey = createContextKey<MetadataEntries | undefined>(undefined, {
  description: "request metadata entries in received order",
});

/** The connection a request came on, set by the server adapter (for the call gate). */
export const connectionKey = createContextKey<ConnectionInfo | undefined>(undefined, {
  description: "the connection of the request",
});

export interface MethodHandlersOptions {
  methods: readonly DescMethod[];
  routes: readonly GrpcKafkaRoute[];
  deps: CallDeps;
  /** Serves `capability: fetch` routes; absent when no route has one. */
  fetch: FetchCapability | undefined;
  /** The listener's call gate (authorize.ts); absent: calls need no authorizing. */
  gate?: CallGate | undefined;
}

/** Registers a handler for each method on the router. */
export function registerMethodHandlers(router: ConnectRouter, options: MethodHandlersOptions) {
  for (const method of options.methods) {
    router.rpc(method, createMethodImpl(method, options) as never);
  }
}

function createMethodImpl(
  method: DescMethod,
  options: MethodHandlersOptions,
): MethodImpl<DescMethod> {
  const path = `${method.parent.typeName}/${method.name}`;

  async function* call(requests: AsyncIterable<Message>, ctx: HandlerContext) {
    const admitted = options.gate ? await admit(options.gate, ctx) : undefined;
    const route = admitted?.route ?? matchRoute(options.routes, path, ctx.requestHeader);
    if (!route) throw noRouteError(path);
    const w = admitted?.with ?? route.with;
    if (w.capability === "fetch") {
      yield* fetchCall(w, requests, ctx, admitted);
      return;
    }
    yield* produceCall(w, requests, ctx, admitted);
  }

  async function admit(gate: CallGate, ctx: HandlerContext): Promise<Admitted> {
    const url = new URL(ctx.url, "http://localhost");
    const connection = ctx.values.get(connectionKey);
    if (!connection) throw new ConnectError(`${path}: no connection to authorize`, Code.Internal);
    const admission = await gate.admit(connection, {
      method: path,
      path: url.pathname + url.search,
      get: (name) => ctx.requestHeader.get(name),
      header: (name) => ctx.requestHeader.get(name) ?? undefined,
    });
    if (!admission.ok) throw admission.error ?? noRouteError(path);
    return admission;
  }

  async function* produceCall(
    route: ProduceWith,
    requests: AsyncIterable<Message>,
    ctx: HandlerContext,
    admitted: Admitted | undefined,
  ): AsyncGenerator<Message> {
    const replies = createReplyQueue<Uint8Array>();
    const sink: ReplySink = {
      headers(metadata) {
        appendMetadata(ctx.responseHeader, metadata);
      },
      message(bytes) {
        replies.push(bytes);
      },
      end(code, message, trailers) {
        if (code === statusOk) {
          appendMetadata(ctx.responseTrailer, trailers);
          replies.close();
        } else {
          replies.fail(new ConnectError(message, code, appendMetadata(new Headers(), trailers)));
        }
      },
    };
    const metadata = ctx.values.get(rawMetadataKey) ?? headerEntries(ctx.requestHeader);
    // The call starts with the first request message or the half-close: a client that
    // resets before then costs nothing in Kafka. ctx.timeoutMs() is the time left by then.
    let call: ProduceCall | undefined;
    // Set once the call failed or the handler is done: nothing may start after that.
    let over = false;
    const started = (): ProduceCall =>
      (call ??= startProduceCall({
        deps: options.deps,
        route,
        service: method.parent.typeName,
        method: method.name,
        metadata: options.gate ? options.gate.metadataOf(metadata) : metadata,
        timeoutMs: ctx.timeoutMs(),
        sink,
        identities: admitted?.identities,
      }));
    const fail = (error: ConnectError) => {
      over = true;
      if (call) call.abort(error.code, error.rawMessage);
      else replies.fail(error);
    };
    const onAbort = () => fail(connectErrorFromAbort(ctx.signal.reason));
    ctx.signal.addEventListener("abort", onAbort);
    const unwatch = admitted?.watch((code, message) => fail(new ConnectError(message, code)));
    // Requests are pumped on their own, so replies stream while the request is still open.
    void (async () => {
      try {
        for await (const message of requests) {
          if (over) return;
          started().message(toBinary(method.input, message));
        }
        if (call === undefined) {
          // Nothing sent yet. A client's reset can reach us as the request's end first (the
          // runtime's server ends a reset stream's body, then reports the abort): the call
          // starts from an end only if its stream is still there a turn later, so that a
          // reset before the first message leaves nothing in Kafka (docs/limits.md).
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (ctx.signal.aborted) return;
        }
        if (!over) started().halfClose();
      } catch (error) {
        // The request stream broke (too large, reset, malformed): the call cannot go on.
        fail(ConnectError.from(error));
      }
    })();
    try {
      for (;;) {
        const bytes = await replies.next();
        if (bytes === undefined) return;
        yield fromBinary(method.output, bytes);
      }
    } finally {
      unwatch?.();
      ctx.signal.removeEventListener("abort", onAbort);
      // A consumer that stops reading early (client gone) ends the call too.
      over = true;
      call?.abort(Code.Canceled, "call ended by the server side");
    }
  }

  async function* fetchCall(
    route: FetchWith,
    requests: AsyncIterable<Message>,
    ctx: HandlerContext,
    admitted: Admitted | undefined,
  ): AsyncGenerator<Message> {
    if (!options.fetch) throw new ConnectError(`${path}: fetch is not served`, Code.Internal);
    // A fetch takes one (normally empty) request message; its bytes go to the capability.
    let request = new Uint8Array(0);
    for await (const message of requests) {
      request = toBinary(method.input, message);
      break;
    }
    // Expiring credentials end the stream like a cancel, with their own status.
    let expired: ConnectError | undefined;
    const ended = new AbortController();
    const onAbort = () => ended.abort(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onAbort);
    const unwatch = admitted?.watch((code, message) => {
      expired = new ConnectError(message, code);
      ended.abort(expired);
    });
    const stream = options.fetch.stream({
      route,
      request,
      metadata: ctx.requestHeader,
      signal: admitted ? ended.signal : ctx.signal,
    });
    try {
      // The message id rides as an unknown field, which protobuf-es keeps when re-encoding.
      for await (const bytes of stream) {
        if (expired) break;
        yield fromBinary(method.output, bytes);
      }
    } finally {
      unwatch?.();
      ctx.signal.removeEventListener("abort", onAbort);
    }
    if (expired) throw expired;
  }

  switch (method.methodKind) {
    case "unary":
      return (async (request: Message, ctx: HandlerContext) =>
        single(call(once(request), ctx), path)) as MethodImpl<DescMethod>;
    case "server_streaming":
      return ((request: Message, ctx: HandlerContext) =>
        call(once(request), ctx)) as MethodImpl<DescMethod>;
    case "client_streaming":
      return (async (requests: AsyncIterable<Message>, ctx: HandlerContext) =>
        single(call(requests, ctx), path)) as MethodImpl<DescMethod>;
    case "bidi_streaming":
      return call as MethodImpl<DescMethod>;
  }
}

async function* once(message: Message): AsyncGenerator<Message> {
  yield message;
}

/** The one response message of a unary or client-streaming call, read to the end. */
async function single(responses: AsyncGenerator<Message>, path: string): Promise<Message> {
  let first: Message | undefined;
  for await (const message of responses) {
    if (first !== undefined) {
      throw new ConnectError(`${path}: reply has more than one message`, Code.Internal);
    }
    first = message;
  }
  if (first === undefined) {
    throw new ConnectError(`${path}: reply ended without a message`, Code.Internal);
  }
  return first;
}

/** Adds metadata entries to headers, skipping names HTTP cannot carry. */
function appendMetadata(target: Headers, metadata: MetadataEntries): Headers {
  for (const [name, value] of metadata) {
    try {
      target.append(name, value);
    } catch {
      // An invalid header name or value from a foreign producer; the rest still goes out.
    }
  }
  return target;
}

function headerEntries(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => {
    out.push([name, value]);
  });
  return out;
}
