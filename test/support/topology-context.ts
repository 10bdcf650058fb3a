/**
 * The steps of config/topology.ts run on zilla.yaml text: the example's zilla.yaml, edited
 * piece by piece, decoded into a namespace with its files loaded, as each step receives it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { interpolateEnv } from "../../src/config/interpolate.ts";
import { decodeNamespace } from "../../src/config/schema.ts";
import type { TopologyContext } from "../../src/config/topology-context.ts";
import { loadTopologyFiles } from "../../src/config/topology-files.ts";
import { parseYamlSource } from "../../src/config/yaml-source.ts";
import { loadServiceRegistry, type ServiceRegistry } from "../../src/service-registry.ts";

export const exampleDir = fileURLToPath(
  new URL("../../examples/grpc.kafka.proxy/", import.meta.url),
);
export const exampleYaml = readFileSync(join(exampleDir, "zilla.yaml"), "utf8");
export const exampleEnv = {
  KEYSTORE_PASSWORD: "zilla-example",
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};

/** The example's zilla.yaml with each [from, to] piece replaced (each piece must be there). */
export function editExample(...edits: [from: string, to: string][]): string {
  let text = exampleYaml;
  for (const [from, to] of edits) {
    expect(text).toContain(from);
    text = text.replace(from, to);
  }
  return text;
}

let registry: ServiceRegistry | undefined;

/**
 * `text` decoded and its files loaded (relative to the example's directory), as the steps
 * after loading receive it. Decoding must succeed: the steps see only well-formed namespaces.
 */
export async function topologyContextOf(
  text: string,
  options: { kafkaServers?: string[]; env?: Record<string, string> } = {},
): Promise<TopologyContext> {
  registry ??= await loadServiceRegistry();
  const source = parseYamlSource(text);
  if (!source.ok) throw new Error(source.errors.map((e) => e.message).join("\n"));
  const interpolation = interpolateEnv(source.value, options.env ?? exampleEnv);
  const decoding = {
    errors: [...interpolation.errors],
    interpolated: interpolation.interpolated,
    unresolved: interpolation.unresolved,
    variables: interpolation.variables,
  };
  const ns = decodeNamespace(decoding, interpolation.value);
  expect(decoding.errors).toEqual([]);
  const errors = decoding.errors;
  const fail = (path: string, message: string): undefined => {
    errors.push({ path, message });
    return undefined;
  };
  const opts = {
    baseDir: exampleDir,
    registry,
    ...(options.kafkaServers ? { kafkaServers: options.kafkaServers } : {}),
  };
  const files = await loadTopologyFiles(ns, opts, fail);
  return { ns, opts, registry, errors, fail, ...files };
}

/** The problems reported so far, as "path: message" lines. */
export function problemsOf(ctx: TopologyContext): string[] {
  return ctx.errors.map((e) => `${e.path}: ${e.message}`);
}
