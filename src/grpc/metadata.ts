/**
 * gRPC request headers that are protocol, not metadata: the content type a native gRPC call
 * must carry, and the headers a client sets itself (metadata of the same name would break
 * the protocol).
 */

/** Whether a content type is gRPC with protobuf messages (`application/grpc[+proto][;...]`). */
export function isGrpcProtoContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const base = contentType.split(";", 1)[0]?.trim().toLowerCase();
  return base === "application/grpc" || base === "application/grpc+proto";
}

/** Headers a gRPC client sets itself; metadata must not repeat them. */
export const reservedRequestHeaders: ReadonlySet<string> = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
]);
