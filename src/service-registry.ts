/**
 * Services and methods known to the gateway, taken from the buf-generated code in `gen/`
 * (never from parsing .proto files). Every `*_pb` module under `gen/` is imported and
 * its file descriptors' services are indexed, so a `buf generate` is all a new proto needs.
 */
import { readdir } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescFile, DescMethod, DescService } from "@bufbuild/protobuf";

export interface ServiceRegistry {
  /** Services by full name, e.g. "grpc.examples.echo.Echo". */
  readonly services: ReadonlyMap<string, DescService>;
  /** The method at "package.Service/Method", if generated. */
  method(path: string): DescMethod | undefined;
  /** Every method matching "package.Service/Method" or "package.Service/*". */
  matching(pattern: string): DescMethod[];
}

/** Where `gen/` is relative to this module (same layout in sources and in `dist/`). */
export const defaultGenDir = new URL("../gen/", import.meta.url);

/** A registry over the given file descriptors. */
export function createServiceRegistry(files: Iterable<DescFile>): ServiceRegistry {
  const services = new Map<string, DescService>();
  for (const file of files)
    for (const service of file.services) services.set(service.typeName, service);
  return {
    services,
    method(path) {
      const [serviceName, methodName] = splitMethodPath(path);
      return services.get(serviceName)?.methods.find((m) => m.name === methodName);
    },
    matching(pattern) {
      const [serviceName, methodName] = splitMethodPath(pattern);
      const service = services.get(serviceName);
      if (!service) return [];
      return methodName === "*"
        ? [...service.methods]
        : service.methods.filter((m) => m.name === methodName);
    },
  };
}

/** Imports every generated module under `genDir` and indexes its services. */
export async function loadServiceRegistry(genDir: URL = defaultGenDir): Promise<ServiceRegistry> {
  const root = fileURLToPath(genDir);
  const entries = await readdir(root, { recursive: true });
  const modules = entries
    .filter((p) => /_pb\.(ts|js)$/.test(p) && !p.endsWith(".d.ts"))
    .filter((p, _, all) => !(p.endsWith(".js") && all.includes(p.replace(/\.js$/, ".ts"))))
    .sort();
  const files: DescFile[] = [];
  for (const rel of modules) {
    const mod = (await import(pathToFileURL(`${root}/${rel}`).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (name.startsWith("file_") && isDescFile(value)) files.push(value);
    }
  }
  return createServiceRegistry(files);
}

/** "pkg.Service/Method" → ["pkg.Service", "Method"]; a leading "/" is allowed. */
export function splitMethodPath(path: string): [service: string, method: string] {
  const p = path.startsWith("/") ? path.slice(1) : path;
  const slash = p.lastIndexOf("/");
  return slash < 0 ? [p, ""] : [p.slice(0, slash), p.slice(slash + 1)];
}

/** Whether "pkg.Service/Method" matches a route pattern ("pkg.Service/Method" or "pkg.Service/*"). */
export function methodMatches(pattern: string, path: string): boolean {
  // As splitMethodPath on both, compared in place: north matches every call's path.
  const a = methodBounds(pattern);
  const b = methodBounds(path);
  const serviceLength = a.serviceEnd - a.start;
  if (serviceLength !== b.serviceEnd - b.start) return false;
  if (!sameChars(pattern, a.start, path, b.start, serviceLength)) return false;
  const methodLength = pattern.length - a.methodStart;
  if (methodLength === 1 && pattern.charCodeAt(a.methodStart) === 42) return true; // "*"
  return (
    methodLength === path.length - b.methodStart &&
    sameChars(pattern, a.methodStart, path, b.methodStart, methodLength)
  );
}

/** Where splitMethodPath's two parts lie in `path` (method empty when there is no "/"). */
function methodBounds(path: string): { start: number; serviceEnd: number; methodStart: number } {
  const start = path.charCodeAt(0) === 47 ? 1 : 0; // a leading "/"
  const slash = path.lastIndexOf("/");
  return slash < start
    ? { start, serviceEnd: path.length, methodStart: path.length }
    : { start, serviceEnd: slash, methodStart: slash + 1 };
}

function sameChars(a: string, aAt: number, b: string, bAt: number, length: number): boolean {
  for (let i = 0; i < length; i++)
    if (a.charCodeAt(aAt + i) !== b.charCodeAt(bAt + i)) return false;
  return true;
}

/**
 * `methodMatches(pattern, service + "/" + method)` without building the path: a record's
 * service and method are checked against a route's pattern once per request record.
 */
export function methodPartsMatch(pattern: string, service: string, method: string): boolean {
  const start = pattern.charCodeAt(0) === 47 ? 1 : 0; // a leading "/"
  const slash = pattern.lastIndexOf("/");
  if (slash < start)
    return method === "" && pattern.length - start === service.length && pattern.endsWith(service);
  if (slash - start !== service.length || !pattern.startsWith(service, start)) return false;
  const methodLength = pattern.length - slash - 1;
  if (methodLength === 1 && pattern.charCodeAt(slash + 1) === 42) return true; // "*"
  return methodLength === method.length && pattern.endsWith(method);
}

function isDescFile(value: unknown): value is DescFile {
  return typeof value === "object" && value !== null && (value as DescFile).kind === "file";
}
