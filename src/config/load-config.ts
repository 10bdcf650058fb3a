/**
 * zilla.yaml → GatewayConfig: parse (YAML syntax), interpolate `${{env.NAME}}`, decode
 * strictly, resolve the binding graph. Every problem found on the way is reported, each with
 * its path and, where it was written, its line.
 */

import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { CompressionCodec } from "../kafka/protocol/compression.ts";
import type { UndecodablePolicy } from "../kafka/undecodable-batches.ts";
import type { ServiceRegistry } from "../service-registry.ts";
import type { ConfigError } from "./config-error.ts";
import { interpolateEnv } from "./interpolate.ts";
import { decodeNamespace } from "./schema.ts";
import { resolveTopology } from "./topology.ts";
import type { GatewayConfig, KafkaGroupTimings } from "./types.ts";
import { parseYamlSource, positionOf } from "./yaml-source.ts";

export interface LoadConfigOptions {
  /** Variables for `${{env.NAME}}`; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** The services generated in gen/ (`loadServiceRegistry()`). */
  registry: ServiceRegistry;
  /** Replaces the kafka client binding's `servers` (e.g. `--kafka-servers`). */
  kafkaServers?: string[];
  /** Replaces the kafka client binding's `compression` (`--kafka-compression`). */
  kafkaCompression?: CompressionCodec;
  /** Replaces its `undecodable-batches` (`--kafka-undecodable-batches`). */
  kafkaUndecodableBatches?: UndecodablePolicy;
  /** Replaces its group timings (`--kafka-session-timeout-ms` and the like). */
  kafkaGroup?: KafkaGroupTimings;
}

export type LoadConfigResult =
  | { ok: true; config: GatewayConfig }
  | { ok: false; errors: ConfigError[] };

/** Reads and resolves a zilla.yaml; paths in it are relative to its directory. */
export async function loadConfig(path: string, opts: LoadConfigOptions): Promise<LoadConfigResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "the file does not exist" : (err as Error).message;
    return {
      ok: false,
      errors: [{ path, message: `cannot read the config file: ${why}; check the path` }],
    };
  }
  return parseConfig(text, dirname(resolve(path)), opts);
}

/** Resolves zilla.yaml text; `baseDir` is where its relative paths start. */
export async function parseConfig(
  text: string,
  baseDir: string,
  opts: LoadConfigOptions,
): Promise<LoadConfigResult> {
  const source = parseYamlSource(text);
  if (!source.ok) return { ok: false, errors: source.errors };
  const interpolation = interpolateEnv(source.value, opts.env ?? process.env);
  const ctx = {
    errors: [...interpolation.errors],
    interpolated: interpolation.interpolated,
    unresolved: interpolation.unresolved,
    variables: interpolation.variables,
  };
  const ns = decodeNamespace(ctx, interpolation.value);
  const config = await resolveTopology(ctx.errors, ns, {
    baseDir,
    registry: opts.registry,
    ...(opts.kafkaServers ? { kafkaServers: opts.kafkaServers } : {}),
    ...(opts.kafkaCompression ? { kafkaCompression: opts.kafkaCompression } : {}),
    ...(opts.kafkaUndecodableBatches
      ? { kafkaUndecodableBatches: opts.kafkaUndecodableBatches }
      : {}),
    ...(opts.kafkaGroup ? { kafkaGroup: opts.kafkaGroup } : {}),
  });
  if (ctx.errors.length === 0 && config) return { ok: true, config };
  return { ok: false, errors: placeErrors(ctx.errors, source.positions) };
}

/** Drops repeats, adds line and column, and orders the errors as they appear in the file. */
function placeErrors(
  errors: ConfigError[],
  positions: Parameters<typeof positionOf>[0],
): ConfigError[] {
  const seen = new Set<string>();
  const placed: ConfigError[] = [];
  for (const e of errors) {
    const key = `${e.path}\n${e.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const at = positionOf(positions, e.path);
    placed.push(at ? { ...e, line: at.line, column: at.column } : e);
  }
  return placed
    .map((e, i) => ({ e, i }))
    .sort((a, b) => (a.e.line ?? 0) - (b.e.line ?? 0) || a.i - b.i)
    .map(({ e }) => e);
}
