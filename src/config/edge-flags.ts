/**
 * The command-line flags that set the front door's timeouts, limits, TLS policy and where the
 * ops routes answer (docs/limits.md, docs/security.md). Zilla sets none of these in zilla.yaml
 * (its engine takes them as properties), so they are flags here; TLS's lowest version is also
 * zilla.yaml's tls `version`, which a flag overrides. One table drives the parser, the usage
 * text and the defaults, so a new limit is one line.
 */
import {
  defaultEdgeLimits,
  type EdgeLimits,
  type GatewayConfig,
  type TlsVersion,
} from "./types.ts";

/** What the edge flags resolve to; absent fields keep the config's value or the default. */
export interface EdgeSettings {
  limits: Partial<EdgeLimits>;
  maxMessageBytes?: number;
  tlsMinVersion?: TlsVersion;
  tlsCiphers?: string;
  /** Serve /healthz, /readyz and /metrics on the north ports too (default: ops port only). */
  opsOnPublicPorts: boolean;
  /** Address the ops port binds (default 0.0.0.0). */
  opsHost?: string;
}

interface NumberFlag {
  flag: string;
  /** The EdgeLimits field, or "maxMessageBytes" (a grpc-kafka option). */
  field: keyof EdgeLimits | "maxMessageBytes";
  help: string;
  /** Lowest accepted value (0 where 0 means "never" or "from the open-file limit"). */
  min: number;
}

const numberFlags: NumberFlag[] = [
  {
    flag: "max-message-bytes",
    field: "maxMessageBytes",
    min: 1,
    help: "largest request or reply message (default 4194304)",
  },
  {
    flag: "max-metadata-bytes",
    field: "maxMetadataBytes",
    min: 0,
    help: "meta:* header bytes per request record (default 8192)",
  },
  {
    flag: "max-header-list-bytes",
    field: "maxHeaderListBytes",
    min: 1024,
    help: "HTTP/2 MAX_HEADER_LIST_SIZE (default 16384)",
  },
  {
    flag: "max-concurrent-streams",
    field: "maxConcurrentStreams",
    min: 1,
    help: "HTTP/2 MAX_CONCURRENT_STREAMS (default 100)",
  },
  {
    flag: "max-connections",
    field: "maxConnections",
    min: 0,
    help: "open connections per north binding (default: 10000, or the open-file limit less 1024)",
  },
  {
    flag: "max-resets",
    field: "maxResets",
    min: 1,
    help: "streams a client may reset per connection in 10 s (default 200)",
  },
  {
    flag: "max-write-buffer-bytes",
    field: "maxWriteBufferBytes",
    min: 65_536,
    help: "reply bytes a connection may hold unread (default 16777216)",
  },
  {
    flag: "handshake-timeout-ms",
    field: "handshakeTimeoutMs",
    min: 1,
    help: "TLS handshake and first request headers (default 10000)",
  },
  {
    flag: "idle-timeout-ms",
    field: "idleTimeoutMs",
    min: 0,
    help: "close a connection with no call for this long (default 300000; 0 = never)",
  },
  {
    flag: "keepalive-ms",
    field: "keepaliveMs",
    min: 0,
    help: "PING an HTTP/2 connection this often (default 60000; 0 = never)",
  },
  {
    flag: "keepalive-timeout-ms",
    field: "keepaliveTimeoutMs",
    min: 1,
    help: "close when a PING is not answered (default 20000)",
  },
  {
    flag: "stream-idle-timeout-ms",
    field: "streamIdleTimeoutMs",
    min: 0,
    help: "end a call whose open request saw no data (default 300000; 0 = never)",
  },
  {
    flag: "write-timeout-ms",
    field: "writeTimeoutMs",
    min: 1,
    help: "end a call whose reply the client does not read (default 30000)",
  },
];

/** The flags for `parseArgs` (every value a string, checked by `parseEdgeFlags`). */
export const edgeFlagOptions: Record<string, { type: "string" | "boolean" }> = {
  ...Object.fromEntries(numberFlags.map((f) => [f.flag, { type: "string" as const }])),
  "tls-min-version": { type: "string" },
  "tls-ciphers": { type: "string" },
  "ops-host": { type: "string" },
  "ops-on-public-ports": { type: "boolean" },
};

/** The usage lines of the edge flags. */
export function edgeFlagsUsage(): string {
  const lines = numberFlags.map((f) => [`--${f.flag} N`, f.help]);
  lines.push(
    ["--tls-min-version V", "TLSv1.2 (default) or TLSv1.3; overrides tls version"],
    ["--tls-ciphers LIST", "TLS 1.2 suites, OpenSSL names joined by : (default ECDHE + AEAD)"],
    ["--ops-host ADDR", "address the ops port binds (default 0.0.0.0)"],
    ["--ops-on-public-ports", "answer /healthz /readyz /metrics on the north ports too"],
  );
  return lines.map(([flag, help]) => `  ${(flag as string).padEnd(32)}${help}`).join("\n");
}

/** Reads the edge flags out of parsed CLI values; a string is the usage error. */
export function parseEdgeFlags(values: Record<string, unknown>): EdgeSettings | string {
  const settings: EdgeSettings = {
    limits: {},
    opsOnPublicPorts: values["ops-on-public-ports"] === true,
  };
  for (const f of numberFlags) {
    const raw = values[f.flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (typeof raw !== "string" || raw.trim() === "" || !Number.isSafeInteger(n) || n < f.min) {
      return `--${f.flag}: expected a whole number of at least ${f.min}, got "${String(raw)}"`;
    }
    if (f.field === "maxMessageBytes") settings.maxMessageBytes = n;
    else settings.limits[f.field] = n;
  }
  const version = values["tls-min-version"];
  if (version !== undefined) {
    if (version !== "TLSv1.2" && version !== "TLSv1.3") {
      return `--tls-min-version: expected TLSv1.2 or TLSv1.3, got "${String(version)}"`;
    }
    settings.tlsMinVersion = version;
  }
  const ciphers = values["tls-ciphers"];
  if (typeof ciphers === "string") {
    if (!/^[A-Za-z0-9_:+!-]+$/.test(ciphers)) {
      return `--tls-ciphers: expected OpenSSL cipher names joined by ":", got "${ciphers}"`;
    }
    settings.tlsCiphers = ciphers;
  }
  const host = values["ops-host"];
  if (typeof host === "string") {
    if (host.trim() === "") return "--ops-host: expected an address, e.g. 127.0.0.1";
    settings.opsHost = host.trim();
  }
  return settings;
}

/** Applies the edge flags to every north binding of `config` (in place); a string is the error. */
export function applyEdgeSettings(
  config: GatewayConfig,
  settings: EdgeSettings,
): string | undefined {
  for (const north of config.north) {
    if (settings.maxMessageBytes !== undefined) {
      north.options = { ...north.options, maxMessageBytes: settings.maxMessageBytes };
    }
    const limits = { ...defaultEdgeLimits(), ...north.limits, ...settings.limits };
    if (limits.maxWriteBufferBytes < north.options.maxMessageBytes) {
      return `--max-write-buffer-bytes (${limits.maxWriteBufferBytes}) must be at least the message limit (${north.options.maxMessageBytes}): a reply message must fit`;
    }
    north.limits = limits;
    for (const listener of north.listeners) {
      if (!listener.tls) continue;
      listener.tls = {
        ...listener.tls,
        ...(settings.tlsMinVersion ? { minVersion: settings.tlsMinVersion } : {}),
        ...(settings.tlsCiphers ? { ciphers: settings.tlsCiphers } : {}),
      };
    }
  }
  return undefined;
}
