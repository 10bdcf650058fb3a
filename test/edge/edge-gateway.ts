/**
 * The gateway as attackers meet it, for the edge scenarios: Zilla's example config run by
 * the CLI as a child process under Bun (the sources) or Node (a build of its own in a temp
 * folder, so test files never share one), with small limits passed as flags so each attack
 * takes seconds. Plus the independent normal call made while an attack runs (`buf curl`, or
 * node:http2 when the status in the trailers is what the test reads).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/grpc/examples/echo/echo_pb.ts";
import { bufCurl } from "../support/buf-curl.ts";
import {
  bin,
  exampleConfig,
  exampleKeystorePassword,
  type GatewayProcess,
  repoRoot,
  run,
  spawnGateway,
} from "../support/gateway-process.ts";
import { grpcMessage } from "../support/raw-http2.ts";

export type EdgeRuntime = "bun" | "node";

/**
 * Compiles the sources for Node into a folder of its own under dist/ (inside the repository,
 * so the build finds node_modules); returns it (remove it after).
 */
export async function buildForNode(): Promise<string> {
  mkdirSync(join(repoRoot, "dist"), { recursive: true });
  const outDir = mkdtempSync(join(repoRoot, "dist", "edge-"));
  const build = await run(bin("tsc"), ["-p", "tsconfig.build.json", "--outDir", outDir], {
    timeoutMs: 150_000,
  });
  if (build.code !== 0) throw new Error(`tsc failed:\n${build.stdout}${build.stderr}`);
  return outDir;
}

/** Removes a folder made by `buildForNode`. */
export function removeBuild(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export interface EdgeGateway {
  readonly proc: GatewayProcess;
  /** The h2c (plain) and TLS north ports, and the ops port. */
  readonly h2cPort: number;
  readonly tlsPort: number;
  readonly opsPort: number;
  /** Stops it (SIGINT, then SIGKILL if it lingers). */
  stop(): Promise<void>;
}

/** Starts the example under `runtime` with `flags` (edge limits and the like). */
export async function startEdgeGateway(
  runtime: EdgeRuntime,
  options: {
    bootstrap: string;
    echoPort: number;
    nodeBuild?: string;
    flags?: string[];
    /** More environment for the gateway process. */
    env?: Record<string, string>;
  },
): Promise<EdgeGateway> {
  const args = [
    "start",
    "--config",
    join(repoRoot, exampleConfig),
    "--kafka-servers",
    options.bootstrap,
    "--ephemeral-ports",
    "--ops-port",
    "0",
    ...(options.flags ?? []),
  ];
  const command =
    runtime === "bun"
      ? { command: bin("bun"), args: ["src/cli.ts", ...args] }
      : {
          command: process.execPath,
          args: [join(options.nodeBuild ?? "dist", "src/cli.js"), ...args],
        };
  const proc = spawnGateway(command.command, command.args, {
    KEYSTORE_PASSWORD: exampleKeystorePassword,
    ECHO_SERVER_HOST: "127.0.0.1",
    ECHO_SERVER_PORT: String(options.echoPort),
    ...options.env,
  });
  let ready: Awaited<ReturnType<GatewayProcess["ready"]>>;
  try {
    ready = await proc.ready(45_000);
  } catch (error) {
    await proc.kill();
    throw error;
  }
  const [h2cPort, tlsPort] = ready.north[0] ?? [];
  return {
    proc,
    h2cPort: h2cPort as number,
    tlsPort: tlsPort as number,
    opsPort: ready.opsPort as number,
    async stop() {
      proc.signal("SIGINT");
      const timer = setTimeout(() => void proc.kill(), 15_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

/** A unary echo with `buf curl` (a client from outside this codebase); resolves its reply text. */
export async function bufCurlEcho(port: number, message: string): Promise<string | undefined> {
  const result = await bufCurl([
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    "-d",
    JSON.stringify({ message }),
    `http://127.0.0.1:${port}/grpc.examples.echo.Echo/UnaryEcho`,
  ]);
  return (result.messages[0] as { message?: string } | undefined)?.message;
}

/** What a gRPC call over node:http2 ended with. */
export interface GrpcOutcome {
  status?: number;
  message?: string;
  /** The reply messages' texts. */
  replies: string[];
  /** The RST_STREAM code, when the stream was reset instead. */
  rstCode?: number;
}

/**
 * One gRPC call over a fresh node:http2 connection (or `session`): `messages` are sent, the
 * request half-closed unless `halfClose` is false; resolves with the status and replies.
 */
export function grpcCall(
  target: number | http2.ClientHttp2Session,
  method: string,
  messages: string[],
  options: {
    halfClose?: boolean;
    headers?: http2.OutgoingHttpHeaders;
    signal?: AbortSignal;
  } = {},
): Promise<GrpcOutcome> {
  const own = typeof target === "number" ? http2.connect(`http://127.0.0.1:${target}`) : undefined;
  const session = own ?? (target as http2.ClientHttp2Session);
  own?.on("error", () => {});
  return new Promise((resolve) => {
    const outcome: GrpcOutcome = { replies: [] };
    const req = session.request(
      {
        ":method": "POST",
        ":path": `/grpc.examples.echo.Echo/${method}`,
        "content-type": "application/grpc",
        te: "trailers",
        ...options.headers,
      },
      options.signal ? { signal: options.signal } : {},
    );
    let body = Buffer.alloc(0);
    const status = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) outcome.status = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) {
        outcome.message = decodeURIComponent(String(h["grpc-message"]));
      }
    };
    req.on("response", status);
    req.on("trailers", status);
    req.on("data", (chunk: Buffer) => {
      body = Buffer.concat([body, chunk]);
      while (body.length >= 5 && body.length >= 5 + body.readUInt32BE(1)) {
        const length = body.readUInt32BE(1);
        const bytes = body.subarray(5, 5 + length);
        outcome.replies.push(fromBinary(EchoResponseSchema, bytes).message);
        body = body.subarray(5 + length);
      }
    });
    req.on("error", () => {});
    req.on("close", () => {
      if (req.rstCode) outcome.rstCode = req.rstCode;
      own?.close();
      resolve(outcome);
    });
    for (const text of messages) {
      req.write(
        grpcMessage(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: text }))),
      );
    }
    if (options.halfClose ?? true) req.end();
  });
}

/** `GET path` on `port` over HTTP/1.1: status and body. */
export async function httpGet(
  port: number,
  path: string,
): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** A client socket and when it closed (either side). */
export interface OpenSocket {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  readonly isClosed: () => boolean;
}

/** Opens a TCP connection to `port` and writes `bytes` (if any), then leaves it be. */
export async function openSocket(port: number, bytes?: Buffer): Promise<OpenSocket> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  // Reads whatever comes, so the server's writes never stall on this side.
  socket.resume();
  let closed = false;
  const closedPromise = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if (bytes) socket.write(bytes);
  return { socket, closed: closedPromise, isClosed: () => closed };
}

/** Resolves once every socket closed, or rejects after `timeoutMs` naming how many are open. */
export async function allClosed(sockets: OpenSocket[], timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `${sockets.filter((s) => !s.isClosed()).length} of ${sockets.length} still open after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([Promise.all(sockets.map((s) => s.closed)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
