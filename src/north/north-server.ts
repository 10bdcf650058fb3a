/**
 * NORTH, the gRPC front door (docs/contract.md: North): serves the configured services on every listener,
 * turns each call into request records and answers it from the reply records. Plain gRPC
 * takes the native path (grpc-stream-handler.ts, bytes through, no per-call pipeline);
 * gRPC-Web, Connect, gRPC+JSON, browsers (CORS) and fetch routes go through connect-es
 * (method-handlers.ts). Both run the same call (produce-call.ts). It accepts no call
 * before its reply reader is positioned, so no reply can be missed.
 */
import { setMaxListeners } from "node:events";
import type http2 from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { defaultEdgeLimits, type NorthConfig } from "../config/types.ts";
import { isGrpcProtoContentType } from "../grpc/metadata.ts";
import { encodeGrpcMessage } from "../grpc/status.ts";
import { type GuardSet, guardSetFor } from "../guard/guard-set.ts";
import type { JwtGuardOptions } from "../guard/jwt-guard.ts";
import type { Kafka } from "../kafka/kafka-client.ts";
import type { ReplyPartitionStats } from "../kafka/reply-partition-set.ts";
import {
  type ReplyOwnershipOptions,
  type ReplyReader,
  startReplyReader,
} from "../kafka/reply-reader.ts";
import { createRequestProducer, type RequestProducer } from "../kafka/request-producer.ts";
import type { NorthMetrics } from "../ops/gateway-metrics.ts";
import type { Logger, LogLevel } from "../ops/logger.ts";
import type { CallTracer } from "../ops/tracing.ts";
import { methodMatches, type ServiceRegistry } from "../service-registry.ts";
import { type CallGate, createCallGates } from "./authorize.ts";
import { countUntilClosed, createCallCounter } from "./call-counter.ts";
import { answerChallengeResponse } from "./challenge-response.ts";
import { createNorthConnectHandler } from "./connect-adapter.ts";
import { createConnectionGuard, type StreamWatch } from "./connection-guard.ts";
import { connectionOfRequest } from "./connection-info.ts";
import { corsDecision, exposeAll } from "./cors.ts";
import { createFetchCapability, type FetchCapability } from "./fetch/fetch-capability.ts";
import { createGrpcStreamHandler, metadataFromRawHeaders } from "./grpc-stream-handler.ts";
import { adaptGrpcWebText } from "./grpc-web-text.ts";
import { connectionKey, rawMetadataKey, registerMethodHandlers } from "./method-handlers.ts";
import {
  type BoundListener,
  listenNorth,
  type NorthHandlers,
  type NorthRequestHandler,
} from "./north-listener.ts";
import { createOpsServices, type OverallHealth } from "./ops-services.ts";
import { ActiveCalls, type CallDeps } from "./produce-call.ts";

export interface North {
  /** Bound ports, in listener order. */
  ports: number[];
  /** The reply topics its reader reads (fixed for its lifetime). */
  readonly replyTopics: readonly string[];
  /** Partitions of each reply topic its reader reads and owns now. */
  replyPartitions(): ReplyPartitionStats[];
  /** Reply records its reader fetched so far. */
  replyRecordsRead(): number;
  /**
   * Serves `config`'s services, methods, routes and CORS policy from the next call on;
   * calls in flight keep what they started with. Throws, changing nothing, when the change
   * needs a reply topic the reader does not read (that takes a restart).
   */
  update(config: NorthConfig): void;
  /** Stops accepting, lets calls finish for up to `graceMs`, cancels the rest, disconnects. */
  close(graceMs?: number): Promise<void>;
}

export interface StartNorthOptions {
  config: NorthConfig;
  kafka: Kafka;
  registry: ServiceRegistry;
  logger: Logger;
  /** Serves requests for paths that are not gRPC methods (health, metrics, ...). */
  fallback?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Records call metrics (absent: none). */
  metrics?: NorthMetrics;
  /** Makes a span per call (absent: no tracing). */
  tracer?: CallTracer;
  /** The level of the one log line per call (default debug). */
  callLogLevel?: LogLevel;
  /** What grpc.health.v1 reports (default SERVING until close). */
  health?: () => OverallHealth;
  /** Key fetching of jwt guards (timeouts, cache ages); defaults in jwt-guard.ts. */
  guardOptions?: Omit<JwtGuardOptions, "logger">;
  /** Told when the listeners reach their connection cap (true) and drop below it (false). */
  capacity?: (atCap: boolean) => void;
  /** Which reply partitions this instance owns (default all; docs/scaling.md). */
  replyOwnership?: ReplyOwnershipOptions;
}

/** connect-node's request handler type (not exported by name). */
type NodeHandlerFn = NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>;

const defaultGraceMs = 5_000;
// After the grace period, cancelled calls get this long to write their trailers.
const cancelFlushMs = 1_000;

/** Starts north: producer, reply reader (positioned), then the listeners. */
export async function startNorth(opts: StartNorthOptions): Promise<North> {
  const { kafka, logger, registry } = opts;
  let config = opts.config;
  const log = logger.child({ binding: config.binding });
  let methods = servedMethods(config, registry);
  const replyTopics = replyTopicsOf(config);

  const producer = await createRequestProducer({ kafka, logger: log });
  let reader: ReplyReader | undefined;
  try {
    if (replyTopics.length > 0) {
      reader = await startReplyReader({
        kafka,
        logger: log,
        topics: replyTopics,
        correlationIdHeader: config.options.correlation.headers.correlationId,
        maxMessageBytes: config.options.maxMessageBytes,
        ...opts.replyOwnership,
      });
    }
  } catch (error) {
    await producer.close();
    throw error;
  }

  const fetchOf = (c: NorthConfig): FetchCapability | undefined =>
    c.routes.some((r) => r.with.capability === "fetch")
      ? createFetchCapability({ kafka, logger: log, options: c.options })
      : undefined;
  let fetch = fetchOf(config);

  // Bound at start, like the listeners: a reload keeps them.
  const limits = config.limits ?? defaultEdgeLimits();
  const deps: CallDeps = {
    producer,
    reader,
    options: config.options,
    limits,
    logger: log,
    active: new ActiveCalls(),
    metrics: opts.metrics,
    tracer: opts.tracer,
    callLogLevel: opts.callLogLevel,
  };
  const unwatchReplies = reader && opts.metrics ? opts.metrics.watchReplies(reader) : () => {};
  const calls = createCallCounter();
  const shutdown = new AbortController();
  // connect-es links every call's signal to this one: one listener per call in flight.
  setMaxListeners(0, shutdown.signal);
  // Aborted first thing in close(): health Watch streams end rather than hold the drain.
  const opsClosing = new AbortController();
  const opsRoutes = createOpsServices({
    registry,
    servedServices: () => config.services,
    health: opts.health ?? (() => (opsClosing.signal.aborted ? "NOT_SERVING" : "SERVING")),
    closing: opsClosing.signal,
  });
  const connectHandlerOf = (c: NorthConfig, served: DescMethod[], gate: CallGate | undefined) =>
    createNorthConnectHandler({
      routes: (router) => {
        opsRoutes(router);
        registerMethodHandlers(router, { methods: served, routes: c.routes, deps, fetch, gate });
      },
      fallback: unknownPathFallback(opts.fallback),
      readMaxBytes: c.options.maxMessageBytes,
      writeMaxBytes: c.options.maxMessageBytes,
      shutdownSignal: shutdown.signal,
      contextValues: (req) => {
        const values = createContextValues().set(
          rawMetadataKey,
          metadataFromRawHeaders(req.rawHeaders),
        );
        return gate ? values.set(connectionKey, connectionOfRequest(req)) : values;
      },
    }) as NorthRequestHandler;
  const grpcHandlerOf = (c: NorthConfig, served: DescMethod[], gate: CallGate | undefined) =>
    createGrpcStreamHandler({
      methods: new Map(served.map((m) => [`/${m.parent.typeName}/${m.name}`, m])),
      routes: c.routes,
      deps,
      gate,
    });
  // Guards and each listener's gate (who may call); rebuilt by update().
  const guardOptions = { ...opts.guardOptions, logger: log };
  let guards: GuardSet | undefined = guardSetFor(undefined, config.guards, guardOptions);
  void guards?.warm();
  let gates = createCallGates(config, guards);
  // Replaced whole by update(): a call in flight keeps the handler (and routes) it began on.
  let connectHandlers = gates.map((gate) => connectHandlerOf(config, methods, gate));
  let grpcHandlers = gates.map((gate) => grpcHandlerOf(config, methods, gate));
  // A call counts until its stream or response is closed (trailers written or reset), so
  // close() does not cut responses that are still being written.
  const handlersOf = (i: number): NorthHandlers => ({
    stream(stream, headers, rawHeaders, watch) {
      if (headers.origin !== undefined) return false; // browsers: CORS applies (request path)
      if (!grpcHandlers[i]?.(stream, headers, rawHeaders, watch)) return false;
      countUntilClosed(stream, calls);
      return true;
    },
    request(req, res, watch) {
      res.once("close", calls.begin());
      if (refuseGrpcOverHttp1(req, res)) return;
      if (watch) watchCompatCall(req, res, watch);
      if (!headersWithCors(config.accessControl, req, res)) return;
      if (answerChallengeResponse(gates[i], req, res)) return;
      adaptGrpcWebText(req, res);
      connectHandlers[i]?.(req, res);
    },
  });

  const guard = createConnectionGuard({
    limits,
    logger: log,
    ...(opts.capacity ? { onCapacity: opts.capacity } : {}),
  });
  const listeners: BoundListener[] = [];
  try {
    for (const [i, listener] of config.listeners.entries()) {
      listeners.push(await listenNorth(listener, handlersOf(i), guard, log));
    }
  } catch (error) {
    for (const l of listeners) l.destroy();
    guard.close();
    unwatchReplies();
    await fetch?.close();
    await stopKafka(producer, reader);
    throw error;
  }
  const ports = listeners.map((l) => l.port);
  log.info("north listening", { ports, methods: methods.length, replyTopics });

  let closing: Promise<void> | undefined;
  return {
    ports,
    replyTopics,
    replyPartitions: () => reader?.partitions() ?? [],
    replyRecordsRead: () => reader?.recordsRead ?? 0,
    update(next) {
      if (closing) throw new Error(`north ${next.binding} is closing`);
      const missing = replyTopicsOf(next).filter((t) => !replyTopics.includes(t));
      if (missing.length > 0) {
        throw new Error(
          `north ${next.binding}: reply topic ${missing.join(", ")} is not read yet; restart the gateway to add it`,
        );
      }
      const nextMethods = servedMethods(next, registry);
      fetch ??= fetchOf(next);
      const nextGuards = guardSetFor(guards, next.guards, guardOptions);
      if (nextGuards !== guards) void nextGuards?.warm();
      guards = nextGuards;
      gates = createCallGates(next, guards);
      connectHandlers = gates.map((gate) => connectHandlerOf(next, nextMethods, gate));
      grpcHandlers = gates.map((gate) => grpcHandlerOf(next, nextMethods, gate));
      config = next;
      methods = nextMethods;
      log.info("north routes updated", { methods: methods.length, routes: next.routes.length });
    },
    close(graceMs = defaultGraceMs) {
      closing ??= (async () => {
        opsClosing.abort();
        for (const l of listeners) l.stopAccepting();
        // Other instances take over this one's reply partitions now; calls in flight here
        // keep theirs read until they end.
        const released = reader
          ?.release()
          .catch((error: unknown) => log.warn("reply partitions not released", { error }));
        // Fetch streams only end when the server stops: end them now (UNAVAILABLE, resumable).
        const fetchClosed = fetch?.close();
        if (!(await calls.idle(graceMs))) {
          log.warn("cancelling calls still open after the grace period", { calls: calls.active });
          for (const call of deps.active.values())
            call.abort(Code.Unavailable, "server is shutting down");
          shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
          await calls.idle(cancelFlushMs);
        }
        for (const l of listeners) l.destroy();
        guard.close();
        await fetchClosed;
        await released;
        unwatchReplies();
        await stopKafka(producer, reader);
        log.info("north closed", { dropped: reader?.dropped ?? 0 });
      })();
      return closing;
    },
  };
}

/** The reply topics of a config's produce routes, each once. */
function replyTopicsOf(config: NorthConfig): string[] {
  return [
    ...new Set(
      config.routes.flatMap((r) =>
        r.with.capability === "produce" && r.with.replyTo !== undefined ? [r.with.replyTo] : [],
      ),
    ),
  ];
}

/** The methods served: those of `config.services`, narrowed by `config.methods` if given. */
function servedMethods(config: NorthConfig, registry: ServiceRegistry): DescMethod[] {
  const methods: DescMethod[] = [];
  for (const name of config.services) {
    const service = registry.services.get(name);
    if (!service) {
      throw new Error(
        `north ${config.binding}: service ${name} is not in gen/; add its proto and run buf generate`,
      );
    }
    for (const method of service.methods) {
      const path = `${service.typeName}/${method.name}`;
      if (!config.methods?.length || config.methods.some((p) => methodMatches(p, path))) {
        methods.push(method);
      }
    }
  }
  return methods;
}

/** Producer first, so queued tombstones of cancelled calls still leave. */
async function stopKafka(producer: RequestProducer, reader: ReplyReader | undefined) {
  await producer.close();
  await reader?.close();
}

/**
 * Native gRPC (not gRPC-Web) needs HTTP/2 trailers, which HTTP/1.1 cannot carry in every
 * runtime (Bun's answer ended with no status at all): such a request gets its status in the
 * response headers, saying what to use instead. True when it was answered.
 */
function refuseGrpcOverHttp1(
  req: Parameters<NodeHandlerFn>[0],
  res: Parameters<NodeHandlerFn>[1],
): boolean {
  if (req.httpVersionMajor !== 1 || !isGrpcProtoContentType(req.headers["content-type"])) {
    return false;
  }
  res.writeHead(200, {
    "content-type": "application/grpc",
    "grpc-status": String(Code.Unimplemented),
    "grpc-message": encodeGrpcMessage(
      "gRPC needs HTTP/2 (h2c prior knowledge, or TLS with ALPN h2); over HTTP/1.1 use gRPC-Web or Connect",
    ),
  });
  res.end();
  req.resume();
  return true;
}

/**
 * Reports a connect-es call's activity to the edge guard: request data and end, and reply
 * writes not taken at once (a client that does not read), so idle and slow-reading calls end.
 */
function watchCompatCall(
  req: Parameters<NodeHandlerFn>[0],
  res: Parameters<NodeHandlerFn>[1],
  watch: StreamWatch,
): void {
  req.once("end", () => watch.requestEnded());
  // connect-es reads the body by async iteration (so does grpc-web-text.ts's decoder); a
  // 'data' listener would take chunks from it, so each chunk is seen on its way instead.
  const readBody = req[Symbol.asyncIterator].bind(req);
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* touchedBody(): AsyncGenerator<unknown> {
      for await (const chunk of { [Symbol.asyncIterator]: readBody }) {
        watch.touch();
        yield chunk;
      }
    },
  });
  const write = res.write as (...args: unknown[]) => boolean;
  (res as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
    const taken = write.apply(res, args);
    if (taken) watch.touch();
    else watch.blocked();
    return taken;
  };
}

/**
 * Paths that are no served method: a gRPC or gRPC-Web request gets a proper UNIMPLEMENTED
 * status (trailers-only), anything else goes to the fallback (Connect clients read its 404
 * as unimplemented too).
 */
function unknownPathFallback(fallback: StartNorthOptions["fallback"]): NodeHandlerFn {
  return (req, res) => {
    const contentType = req.headers["content-type"] ?? "";
    if (contentType.startsWith("application/grpc")) {
      const path = (req.url ?? "").split("?", 1)[0] ?? "";
      res.writeHead(200, {
        "content-type": contentType.startsWith("application/grpc-web")
          ? "application/grpc-web+proto"
          : "application/grpc",
        "grpc-status": String(Code.Unimplemented),
        "grpc-message": encodeURIComponent(`unknown method ${path}`),
      });
      res.end();
      return;
    }
    if (fallback) {
      // HTTP/1.1 requests arrive as IncomingMessage/ServerResponse, which share this API.
      fallback(req as http2.Http2ServerRequest, res as unknown as http2.Http2ServerResponse);
      return;
    }
    res.writeHead(404);
    res.end();
  };
}

/**
 * Applies the CORS policy (Zilla's http binding access-control) to a request: answers
 * preflights and refusals itself (false), else adds the CORS response headers (true).
 */
function headersWithCors(
  policy: NorthConfig["accessControl"],
  req: Parameters<NodeHandlerFn>[0],
  res: Parameters<NodeHandlerFn>[1],
): boolean {
  if (req.headers.origin === undefined) return true;
  const authority = req.headers[":authority"] ?? req.headers.host;
  const decision = corsDecision(
    policy,
    (req.method ?? "GET").toUpperCase(),
    req.headers,
    Array.isArray(authority) ? authority[0] : authority,
  );
  if (decision.kind === "refuse") {
    res.writeHead(decision.status, { "content-type": "text/plain" });
    res.end(decision.reason);
    return false;
  }
  if (decision.kind === "preflight") {
    res.writeHead(decision.status, decision.headers);
    res.end();
    return false;
  }
  for (const [name, value] of Object.entries(decision.headers)) {
    if (value !== undefined) res.setHeader(name, value as string | string[]);
  }
  if (decision.headers["access-control-allow-origin"] !== undefined && !policy?.expose?.headers) {
    // Without a configured list, browsers may read every header the call sends back.
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => unknown;
    (res as { writeHead: (...args: unknown[]) => unknown }).writeHead = (...args: unknown[]) => {
      const names = [...res.getHeaderNames()];
      const extra = args.find((a) => typeof a === "object" && a !== null && !Array.isArray(a));
      if (extra) names.push(...Object.keys(extra));
      // gRPC-Web clients read the status from these headers when a reply has no body.
      if (String(req.headers["content-type"]).startsWith("application/grpc-web")) {
        names.push("grpc-status", "grpc-message", "grpc-status-details-bin");
      }
      const exposed = exposeAll(names);
      if (exposed !== "") res.setHeader("access-control-expose-headers", exposed);
      return writeHead(...args);
    };
  }
  return true;
}
