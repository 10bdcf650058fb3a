/**
 * Structured logs: one JSON object per line on stdout, with a level threshold.
 * Every line about a call carries its correlation id, so one search follows a call
 * through north, Kafka and west.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether a level would be written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export type LogSink = (line: string) => void;

/** A JSON-lines logger writing to `sink` (default stdout). */
export function createLogger(
  level: LogLevel = "info",
  sink: LogSink = (line) => process.stdout.write(`${line}\n`),
  base: LogFields = {},
): Logger {
  const write = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (rank[lvl] < rank[logger.level]) return;
    sink(
      JSON.stringify(
        { time: new Date().toISOString(), level: lvl, msg, ...base, ...fields },
        replacer,
      ),
    );
  };
  const logger: Logger = {
    level,
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    enabled: (lvl) => rank[lvl] >= rank[logger.level],
    child: (fields) => createLogger(logger.level, sink, { ...base, ...fields }),
  };
  return logger;
}

/** A logger that writes nothing (tests, embedding). */
export const silentLogger: Logger = createLogger("error", () => {});
silentLogger.level = "error";

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
