/**
 * gRPC health and server reflection on a real HTTP/2 server: a Connect gRPC client checks and
 * watches health and asks reflection questions (v1 and v1alpha); `buf curl` (a Go gRPC client)
 * lists the services and calls Echo with no proto file, resolving the schema by reflection.
 */
import { execFile } from "node:child_process";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FanoutService } from "../../gen/example/fanout_pb.ts";
import { Echo } from "../../gen/grpc/examples/echo/echo_pb.ts";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import {
  ServerReflection,
  type ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  type ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import {
  createOpsServices,
  isOpsServicePath,
  type OpsServicesOptions,
  type OverallHealth,
} from "../../src/north/ops-services.ts";
import { loadServiceRegistry } from "../../src/service-registry.ts";

const run = promisify(execFile);
const buf = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
const bufTimeoutMs = 20_000;

interface TestServer {
  url: string;
  transport: Transport;
  close(): Promise<void>;
}

/** An h2c server with the ops services and a trivial Echo, on an ephemeral loopback port. */
async function startServer(
  ops: Omit<OpsServicesOptions, "registry" | "watchIntervalMs">,
): Promise<TestServer> {
  const opsRoutes = createOpsServices({
    registry: await loadServiceRegistry(),
    watchIntervalMs: 50,
    ...ops,
  });
  const handler = connectNodeAdapter({
    routes(router) {
      opsRoutes(router);
      router.service(Echo, { unaryEcho: (req) => ({ message: req.message }) });
      router.service(FanoutService, {});
    },
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    transport: createGrpcTransport({ baseUrl: url }),
    async close() {
      for (const s of sessions) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let health: OverallHealth = "SERVING";
let served = ["grpc.examples.echo.Echo", "example.FanoutService"];
let main: TestServer;
let url: string;
let transport: Transport;

beforeAll(async () => {
  main = await startServer({ servedServices: () => served, health: () => health });
  ({ url, transport } = main);
});

afterAll(() => main?.close());

describe("grpc.health.v1.Health", () => {
  it("watch.ends.unavailable.when.closing", async () => {
    const closing = new AbortController();
    const own = await startServer({
      servedServices: () => [],
      health: () => "SERVING",
      closing: closing.signal,
    });
    const seen: ServingStatus[] = [];
    try {
      const err = await (async () => {
        for await (const res of createClient(Health, own.transport).watch({})) {
          seen.push(res.status);
          closing.abort();
        }
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    } finally {
      await own.close();
    }
  });

  it("check.reports.overall.and.per.service", async () => {
    const client = createClient(Health, transport);
    try {
      expect((await client.check({})).status).toBe(ServingStatus.SERVING);
      expect((await client.check({ service: "grpc.examples.echo.Echo" })).status).toBe(
        ServingStatus.SERVING,
      );
      expect((await client.check({ service: "grpc.health.v1.Health" })).status).toBe(
        ServingStatus.SERVING,
      );
      health = "NOT_SERVING";
      expect((await client.check({})).status).toBe(ServingStatus.NOT_SERVING);
      expect((await client.check({ service: "grpc.examples.echo.Echo" })).status).toBe(
        ServingStatus.NOT_SERVING,
      );
    } finally {
      health = "SERVING";
    }
  });

  it("check.unknown.service.not.found", async () => {
    const err = await createClient(Health, transport)
      .check({ service: "no.such.Service" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });

  it("watch.sends.current.then.changes", async () => {
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    try {
      const stream = createClient(Health, transport).watch(
        { service: "grpc.examples.echo.Echo" },
        { signal: abort.signal },
      );
      for await (const res of stream) {
        seen.push(res.status);
        if (seen.length === 1) health = "NOT_SERVING";
        else if (seen.length === 2) health = "SERVING";
        else break;
      }
    } finally {
      abort.abort();
      health = "SERVING";
    }
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  });

  it("watch.unknown.service.is.service.unknown", async () => {
    const abort = new AbortController();
    try {
      const stream = createClient(Health, transport).watch(
        { service: "no.such.Service" },
        { signal: abort.signal },
      );
      for await (const res of stream) {
        expect(res.status).toBe(ServingStatus.SERVICE_UNKNOWN);
        break;
      }
    } finally {
      abort.abort();
    }
  });
});

describe("isOpsServicePath", () => {
  it("tells ops service paths from others", () => {
    expect(isOpsServicePath("/grpc.health.v1.Health/Check")).toBe(true);
    expect(isOpsServicePath("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")).toBe(
      true,
    );
    expect(isOpsServicePath("/grpc.examples.echo.Echo/UnaryEcho")).toBe(false);
    expect(isOpsServicePath("/grpc.health.v1.Healthy/Check?x=1")).toBe(false);
  });
});

type ReflectionInit = MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"];

/** Sends `requests` on one ServerReflectionInfo stream; the responses, in order. */
async function reflect(
  requests: ReflectionInit[],
  version: "v1" | "v1alpha" = "v1",
): Promise<ServerReflectionResponse["messageResponse"][]> {
  async function* input() {
    for (const messageRequest of requests) yield { host: "h", messageRequest };
  }
  const out: ServerReflectionResponse["messageResponse"][] = [];
  if (version === "v1") {
    for await (const res of createClient(ServerReflection, transport).serverReflectionInfo(input()))
      out.push(res.messageResponse);
  } else {
    const client = createClient(ServerReflectionV1alpha, transport);
    // The v1alpha messages carry the same fields under another package; the init objects
    // carry no type names, so the v1 ones serve as they are. Compare answers in v1 terms.
    const v1alphaInput = input() as unknown as AsyncIterable<
      MessageInitShape<typeof ServerReflectionRequestSchemaV1alpha>
    >;
    for await (const res of client.serverReflectionInfo(v1alphaInput))
      out.push(res.messageResponse as ServerReflectionResponse["messageResponse"]);
  }
  return out;
}

/** The file names in a file_descriptor_response, in order. */
function fileNames(res: ServerReflectionResponse["messageResponse"] | undefined): string[] {
  if (res?.case !== "fileDescriptorResponse") throw new Error(`not a file response: ${res?.case}`);
  return res.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

describe("grpc.reflection ServerReflectionInfo", () => {
  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}.answers.each.request.on.one.stream`, async () => {
      const [list, bySymbol, byMethod, byEnum, byFile, unknown] = await reflect(
        [
          { case: "listServices", value: "" },
          { case: "fileContainingSymbol", value: "example.FanoutService" },
          { case: "fileContainingSymbol", value: "grpc.examples.echo.Echo.UnaryEcho" },
          {
            case: "fileContainingSymbol",
            value: "grpc.health.v1.HealthCheckResponse.ServingStatus",
          },
          { case: "fileByFilename", value: "google/protobuf/empty.proto" },
          { case: "fileContainingSymbol", value: "no.such.Thing" },
        ],
        version,
      );
      expect(
        list?.case === "listServicesResponse" && list.value.service.map((s) => s.name),
      ).toEqual([
        "grpc.examples.echo.Echo",
        "example.FanoutService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      // The file, then what it imports, so a client can build the schema from this answer.
      expect(fileNames(bySymbol)).toEqual(["example/fanout.proto", "google/protobuf/empty.proto"]);
      expect(fileNames(byMethod)).toEqual(["grpc/examples/echo/echo.proto"]);
      expect(fileNames(byEnum)).toEqual(["grpc/health/v1/health.proto"]);
      expect(fileNames(byFile)).toEqual(["google/protobuf/empty.proto"]);
      expect(unknown?.case).toBe("errorResponse");
      expect(unknown?.case === "errorResponse" && unknown.value.errorCode).toBe(Code.NotFound);
    });
  }

  it("hides.services.that.are.not.served", async () => {
    const before = served;
    served = ["grpc.examples.echo.Echo"];
    try {
      const [list, fanout, echo] = await reflect([
        { case: "listServices", value: "" },
        { case: "fileContainingSymbol", value: "example.FanoutMessage" },
        { case: "fileContainingSymbol", value: "grpc.examples.echo.EchoRequest" },
      ]);
      expect(
        list?.case === "listServicesResponse" && list.value.service.map((s) => s.name),
      ).not.toContain("example.FanoutService");
      expect(fanout?.case === "errorResponse" && fanout.value.errorCode).toBe(Code.NotFound);
      expect(fileNames(echo)).toEqual(["grpc/examples/echo/echo.proto"]);
    } finally {
      served = before;
    }
  });

  it("unknown.extension.not.found", async () => {
    const [ext, numbers, notAMessage] = await reflect([
      {
        case: "fileContainingExtension",
        value: { containingType: "grpc.examples.echo.EchoRequest", extensionNumber: 100 },
      },
      { case: "allExtensionNumbersOfType", value: "grpc.examples.echo.EchoRequest" },
      { case: "allExtensionNumbersOfType", value: "grpc.examples.echo.Echo" },
    ]);
    expect(ext?.case === "errorResponse" && ext.value.errorCode).toBe(Code.NotFound);
    expect(numbers?.case === "allExtensionNumbersResponse" && numbers.value).toMatchObject({
      baseTypeName: "grpc.examples.echo.EchoRequest",
      extensionNumber: [],
    });
    expect(notAMessage?.case === "errorResponse" && notAMessage.value.errorCode).toBe(
      Code.NotFound,
    );
  });
});

describe("buf curl over reflection (no proto file)", () => {
  const curl = (args: string[]) =>
    run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: bufTimeoutMs,
    });

  it("buf.curl.list.services", async () => {
    const { stdout } = await curl(["--list-services", url]);
    const names = stdout.split("\n").filter((l) => l !== "");
    expect(names).toContain("grpc.examples.echo.Echo");
    expect(names).toContain("grpc.health.v1.Health");
  });

  for (const reflectProtocol of ["grpc-v1", "grpc-v1alpha"]) {
    it(`buf.curl.unary.echo.${reflectProtocol}`, async () => {
      const { stdout } = await curl([
        "--reflect-protocol",
        reflectProtocol,
        "--data",
        '{"message":"hi"}',
        `${url}/grpc.examples.echo.Echo/UnaryEcho`,
      ]);
      expect(JSON.parse(stdout)).toEqual({ message: "hi" });
    });
  }
});
