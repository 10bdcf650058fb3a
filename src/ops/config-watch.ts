/**
 * Hot reload of a zilla.yaml: watches the file (through its directory, so editors that save
 * by writing a new file and renaming it are seen too), waits for writes to settle, and hands
 * a changed file to the gateway. A file that does not load is refused whole and the running
 * config stays; one that loads is applied as far as it can be without a restart
 * (config-reload.ts), and what is left is logged. Each changed file gets one log line, whose
 * `result` is the label `gateway_config_reloads_total` counts it under.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { GatewayConfig } from "../config/types.ts";
import type { Gateway } from "../gateway.ts";
import type { ReloadOutcome } from "./gateway-metrics.ts";
import type { LogFields, Logger } from "./logger.ts";

export interface ConfigWatchOptions {
  path: string;
  /** Loads and validates the file; undefined when it is invalid (its errors already reported). */
  load: () => Promise<GatewayConfig | undefined>;
  gateway: Pick<Gateway, "reload" | "telemetry">;
  logger: Logger;
  /** How long writes must pause before the file is read (default 300 ms). */
  debounceMs?: number;
}

export interface ConfigWatch {
  /** Resolves once the reload in progress, if any, is done. */
  readonly settled: Promise<void>;
  close(): Promise<void>;
}

/** Starts watching `path`; the file's content now is the baseline. */
export function watchConfigFile(options: ConfigWatchOptions): ConfigWatch {
  const { gateway, logger } = options;
  const path = resolve(options.path);
  const name = basename(path);
  const debounceMs = options.debounceMs ?? 300;
  let last = readText(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let closed = false;

  const reload = async () => {
    const text = readText(path);
    // Unchanged content (a touch, a second event for one save) or a file mid-replace.
    if (text === undefined || text === last) return;
    last = text;
    const config = await options.load();
    if (closed) return;
    if (!config) {
      report("refused", { running: "unchanged" });
      return;
    }
    const { applied, needsRestart } = gateway.reload(config);
    if (needsRestart.length === 0) report("applied", { applied });
    else if (applied.length > 0) report("partial", { applied, needsRestart });
    else report("restart_needed", { needsRestart });
  };

  // One log line per changed file, and the metric counts exactly those lines by result.
  const report = (result: ReloadOutcome, fields: LogFields) => {
    gateway.telemetry.metrics.reloaded(result);
    const line = { config: path, result, ...fields };
    if (result === "applied") logger.info("config reloaded", line);
    else if (result === "partial") logger.warn("config reloaded in part", line);
    else if (result === "restart_needed") logger.warn("config change needs a restart", line);
    else if (result === "refused") logger.error("config change refused", line);
    else logger.error("config reload failed", line);
  };

  const watcher: FSWatcher = watch(dirname(path), (_event, file) => {
    if (closed || (file !== null && file.toString() !== name)) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = running.then(reload).catch((error: unknown) => report("failed", { error }));
    }, debounceMs);
  });
  watcher.on("error", (error) => logger.warn("config watch failed", { config: path, error }));

  return {
    get settled() {
      return running;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
      await running;
    },
  };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
