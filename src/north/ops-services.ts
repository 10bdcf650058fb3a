/**
 * gRPC's standard health (grpc.health.v1) and server reflection (grpc.reflection.v1 and its
 * older name v1alpha) services for the north ports, so that probes and tools such as
 * grpcurl and `buf curl` can check and call the gateway without a copy of its protos.
 * Schemas come only from the buf-generated descriptors the service registry indexes.
 */
import {
  create,
  type DescExtension,
  type DescFile,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  file_grpc_health_v1_health,
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1alpha,
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { type ServiceRegistry, splitMethodPath } from "../service-registry.ts";

export type OverallHealth = "SERVING" | "NOT_SERVING";

export interface OpsServicesOptions {
  /** Where schemas come from (the buf-generated descriptors). */
  registry: ServiceRegistry;
  /** Full names of the services north serves now, e.g. "grpc.examples.echo.Echo". */
  servedServices: () => string[];
  /** The gateway's health; every served service shares it. */
  health: () => OverallHealth;
  /** How often Watch samples `health` for changes (default 1000). */
  watchIntervalMs?: number;
  /**
   * Aborted when the server starts to close: Watch streams then send NOT_SERVING and end with
   * UNAVAILABLE, rather than hold the shutdown for its whole grace period.
   */
  closing?: AbortSignal;
}

/** The services these ops services add to the served ones. */
export const opsServiceNames: readonly string[] = [
  Health.typeName,
  ServerReflection.typeName,
  ServerReflectionV1alpha.typeName,
];

const opsFiles: readonly DescFile[] = [
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
];

const defaultWatchIntervalMs = 1_000;

/** Whether a request path ("/pkg.Service/Method", maybe with a query) is an ops service's. */
export function isOpsServicePath(path: string): boolean {
  const [service] = splitMethodPath(path.split("?", 1)[0] ?? "");
  return opsServiceNames.includes(service);
}

/** Registers grpc.health.v1.Health and ServerReflection (v1 and v1alpha) on a Connect router. */
export function createOpsServices(opts: OpsServicesOptions): (router: ConnectRouter) => void {
  const watchIntervalMs = opts.watchIntervalMs ?? defaultWatchIntervalMs;
  const statusOf = (service: string): ServingStatus | undefined => {
    const known =
      service === "" ||
      opsServiceNames.includes(service) ||
      opts.servedServices().includes(service);
    if (!known) return undefined;
    return opts.health() === "SERVING" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const reflection = createReflection(opts);

  return (router) => {
    router.service(Health, {
      check(req) {
        const status = statusOf(req.service);
        // The health protocol: Check on a service the server does not know is NOT_FOUND.
        if (status === undefined) {
          throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        }
        return { status };
      },
      async *watch(req, ctx) {
        const { closing } = opts;
        const wake = closing ? AbortSignal.any([ctx.signal, closing]) : ctx.signal;
        // Unlike Check, Watch reports an unknown service as SERVICE_UNKNOWN and keeps
        // watching: the protocol lets a service appear later.
        let last: ServingStatus | undefined;
        for (;;) {
          if (closing?.aborted) {
            if (last !== ServingStatus.NOT_SERVING) yield { status: ServingStatus.NOT_SERVING };
            throw new ConnectError("server is shutting down", Code.Unavailable);
          }
          const status = statusOf(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          try {
            await sleep(watchIntervalMs, wake);
          } catch (error) {
            if (ctx.signal.aborted || !closing?.aborted) throw error;
          }
        }
      },
    });
    router.service(ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield reflection.answer(req);
      },
    });
    router.service(ServerReflectionV1alpha, {
      async *serverReflectionInfo(requests) {
        // v1alpha has the same messages under another package, so the bytes are identical:
        // re-read them as v1 and answer with the one implementation.
        for await (const req of requests) {
          const asV1 = fromBinary(
            ServerReflectionRequestSchema,
            toBinary(ServerReflectionRequestSchemaV1alpha, req),
          );
          yield fromBinary(
            ServerReflectionResponseSchemaV1alpha,
            toBinary(ServerReflectionResponseSchema, reflection.answer(asV1)),
          );
        }
      },
    });
  };
}

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

interface SchemaIndex {
  byFilename: Map<string, DescFile>;
  bySymbol: Map<string, DescFile>;
  messages: Set<string>;
  /** Extensions by the full name of the message they extend. */
  extensions: Map<string, DescExtension[]>;
}

/** What the reflection service can see: files of served and ops services, and their imports. */
interface ReflectionView {
  services: string[];
  /** File names reachable from `services`. */
  visible: Set<string>;
}

function createReflection(opts: OpsServicesOptions) {
  const roots = [...[...opts.registry.services.values()].map((s) => s.file), ...opsFiles];
  const index = indexFiles(roots);
  const encoded = new Map<string, Uint8Array>();
  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file.proto.name, bytes);
    }
    return bytes;
  };

  // The served set rarely changes; rebuild the view only when it does.
  let view: ReflectionView | undefined;
  let viewKey = "";
  const currentView = (): ReflectionView => {
    const services = [...new Set([...opts.servedServices(), ...opsServiceNames])];
    const key = services.join("\n");
    if (view && key === viewKey) return view;
    const visible = new Set<string>();
    for (const name of services) {
      const file =
        opts.registry.services.get(name)?.file ?? opsFiles.find((f) => hasService(f, name));
      if (file) for (const f of withDependencies(file)) visible.add(f.proto.name);
    }
    viewKey = key;
    view = { services, visible };
    return view;
  };

  const fileResponse = (
    file: DescFile | undefined,
    what: string,
    view: ReflectionView,
  ): ResponseInit => {
    if (!file || !view.visible.has(file.proto.name)) return notFound(what);
    return {
      case: "fileDescriptorResponse" as const,
      value: { fileDescriptorProto: withDependencies(file).map(encode) },
    };
  };

  return {
    answer(req: ServerReflectionRequest): ServerReflectionResponse {
      const view = currentView();
      const r = req.messageRequest;
      let messageResponse: ResponseInit;
      switch (r.case) {
        case "listServices":
          messageResponse = {
            case: "listServicesResponse",
            value: { service: view.services.map((name) => ({ name })) },
          };
          break;
        case "fileByFilename":
          messageResponse = fileResponse(index.byFilename.get(r.value), `file "${r.value}"`, view);
          break;
        case "fileContainingSymbol":
          messageResponse = fileResponse(index.bySymbol.get(r.value), `symbol "${r.value}"`, view);
          break;
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = r.value;
          const ext = index.extensions
            .get(containingType)
            ?.find((e) => e.number === extensionNumber);
          messageResponse = fileResponse(
            ext?.file,
            `extension ${extensionNumber} of "${containingType}"`,
            view,
          );
          break;
        }
        case "allExtensionNumbersOfType": {
          const file = index.bySymbol.get(r.value);
          if (!file || !index.messages.has(r.value) || !view.visible.has(file.proto.name)) {
            messageResponse = notFound(`type "${r.value}"`);
            break;
          }
          const numbers = (index.extensions.get(r.value) ?? [])
            .filter((e) => view.visible.has(e.file.proto.name))
            .map((e) => e.number);
          messageResponse = {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value, extensionNumber: numbers },
          };
          break;
        }
        default:
          messageResponse = errorResponse(Code.InvalidArgument, "empty reflection request");
      }
      return create(ServerReflectionResponseSchema, {
        validHost: req.host,
        originalRequest: req,
        messageResponse,
      });
    },
  };
}

/** Every file reachable from `roots` by imports, indexed by file name and by symbol. */
function indexFiles(roots: Iterable<DescFile>): SchemaIndex {
  const index: SchemaIndex = {
    byFilename: new Map(),
    bySymbol: new Map(),
    messages: new Set(),
    extensions: new Map(),
  };
  for (const root of roots) {
    for (const file of withDependencies(root)) {
      if (index.byFilename.has(file.proto.name)) continue;
      index.byFilename.set(file.proto.name, file);
      for (const type of nestedTypes(file)) {
        index.bySymbol.set(type.typeName, file);
        if (type.kind === "message") {
          index.messages.add(type.typeName);
        } else if (type.kind === "service") {
          for (const method of type.methods)
            index.bySymbol.set(`${type.typeName}.${method.name}`, file);
        } else if (type.kind === "extension") {
          const list = index.extensions.get(type.extendee.typeName) ?? [];
          list.push(type);
          index.extensions.set(type.extendee.typeName, list);
        }
      }
    }
  }
  return index;
}

/** The file first, then everything it imports, transitively, each once. */
function withDependencies(file: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.set(f.proto.name, f);
    for (const dep of f.dependencies) visit(dep);
  };
  visit(file);
  return [...seen.values()];
}

function hasService(file: DescFile, name: string): boolean {
  return file.services.some((s) => s.typeName === name);
}

function notFound(what: string): ResponseInit {
  return errorResponse(Code.NotFound, `${what} not found`);
}

function errorResponse(code: Code, message: string): ResponseInit {
  return {
    case: "errorResponse" as const,
    value: { errorCode: code, errorMessage: message },
  };
}

/** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
