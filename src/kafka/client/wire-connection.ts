/**
 * One connection to one Kafka broker for the gateway's own client (see kafka-cluster.ts):
 * TCP or TLS, SASL (PLAIN, SCRAM-SHA-256/512) when configured, the broker's API versions,
 * and pipelined requests answered in order by correlation id. A request that gets no answer
 * in time, or a socket error, closes the connection and fails everything in flight on it
 * (answers on one connection come in request order, so nothing later can be trusted).
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { SaslOptions, TlsClientOptions } from "../../config/types.ts";
import { ApiKey } from "../protocol/api-keys.ts";
import type { CompressionCodec } from "../protocol/compression.ts";
import { KafkaConnectionError, KafkaProtocolError } from "../protocol/errors.ts";
import { Reader, Writer } from "../protocol/wire.ts";
import { plainInitialResponse, ScramClient } from "./sasl.ts";

/** How the gateway's client reaches the cluster. */
export interface WireSettings {
  /** Bootstrap servers, "host:port". */
  servers: string[];
  clientId: string;
  tls?: TlsClientOptions;
  sasl?: SaslOptions;
  connectTimeoutMs: number;
  /** How long a broker may take to answer (long polls add their own wait). */
  requestTimeoutMs: number;
  /**
   * How long lookups keep retrying (metadata while a topic is created or a leader moves,
   * ListOffsets) before failing.
   */
  retryTimeoutMs: number;
  /**
   * The longest a produced record is retried (leader moves, brokers unreachable): each
   * record stops at its caller's deadline, and at this bound at the latest (default 60 s).
   */
  produceRetryMaxMs?: number;
  /** The codec of the batches this client produces (default none). */
  compression?: CompressionCodec;
}

const apiNames = new Map<number, string>(Object.entries(ApiKey).map(([name, key]) => [key, name]));

interface Pending {
  apiKey: number;
  resolve(reader: Reader): void;
  reject(error: Error): void;
  deadline: number;
}

/** The largest request buffer kept for reuse. */
const maxSpareBytes = 1 << 20;

/** Writes one request body. */
export type RequestBody = (w: Writer) => void;

export class WireConnection {
  readonly address: string;
  private readonly socket: Socket;
  private readonly clientId: string;
  /** Bytes of a request's size prefix and header (key, version, id, client id). */
  private readonly headerBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly requestBytes: number[] = [];
  /** A written request's writer, for the next request (see write). */
  private spare: Writer | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private versions = new Map<number, readonly [number, number]>();
  private closeError: Error | undefined;
  private readonly closeListeners: ((error: Error) => void)[] = [];

  private constructor(socket: Socket, address: string, settings: WireSettings) {
    this.socket = socket;
    this.address = address;
    this.clientId = settings.clientId;
    this.headerBytes = 4 + 2 + 2 + 4 + 2 + Buffer.byteLength(settings.clientId);
    this.requestTimeoutMs = settings.requestTimeoutMs;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) =>
      this.fail(new KafkaConnectionError(`${address}: ${error.message}`, error)),
    );
    socket.on("close", () => this.fail(new KafkaConnectionError(`${address}: connection closed`)));
    // One timer per connection instead of one per request: requests are answered in order,
    // so the oldest pending request is the one that times out first.
    this.sweeper = setInterval(() => this.sweep(), 250);
    this.sweeper.unref?.();
  }

  /**
   * Connects, negotiates API versions and authenticates; `signal` gives up (closing the
   * socket) while that is still under way.
   */
  static async open(
    address: string,
    settings: WireSettings,
    signal?: AbortSignal,
  ): Promise<WireConnection> {
    const socket = await openSocket(address, settings);
    const connection = new WireConnection(socket, address, settings);
    const abort = () => connection.close();
    if (signal?.aborted) abort();
    signal?.addEventListener("abort", abort);
    try {
      await connection.negotiateVersions();
      if (settings.sasl) await connection.authenticate(settings.sasl);
    } catch (error) {
      connection.close();
      throw error;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    return connection;
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** Runs `listener` once when the connection closes, for whatever reason. */
  onClose(listener: (error: Error) => void): void {
    if (this.closeError) listener(this.closeError);
    else this.closeListeners.push(listener);
  }

  /**
   * The highest version of `apiKey` both sides speak, within [min, max] of ours; throws
   * when there is none.
   */
  version(apiKey: number, min: number, max: number): number {
    const theirs = this.versions.get(apiKey);
    if (!theirs || theirs[1] < min || theirs[0] > max) {
      const range = theirs ? `versions ${theirs[0]}–${theirs[1]}` : "no version";
      const name = apiNames.get(apiKey) ?? "API";
      throw new KafkaProtocolError(
        35,
        `${this.address} supports ${range} of ${name} (key ${apiKey}); this client needs ${min}–${max}`,
      );
    }
    return Math.min(max, theirs[1]);
  }

  /** Sends a request and resolves with the response body (after the correlation id). */
  request(
    apiKey: number,
    version: number,
    body: RequestBody,
    extraWaitMs = 0,
    bodyBytes?: number,
  ): Promise<Reader> {
    if (this.closeError) return Promise.reject(this.closeError);
    const id = this.write(apiKey, version, body, bodyBytes);
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.requestTimeoutMs + extraWaitMs;
      this.pending.set(id, { apiKey, resolve, reject, deadline });
    });
  }

  /** Sends a request the broker does not answer (Produce with acks=0). */
  send(apiKey: number, version: number, body: RequestBody, bodyBytes?: number): void {
    if (this.closeError) throw this.closeError;
    this.write(apiKey, version, body, bodyBytes);
  }

  close(): void {
    this.fail(new KafkaConnectionError(`${this.address}: connection closed by the client`));
  }

  private write(apiKey: number, version: number, body: RequestBody, bodyBytes?: number): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0x7fffffff;
    // Sized by the body's own bound when it gives one (Produce: its sizes vary by records,
    // from one small record to a megabyte), else like the last request of its kind.
    const size =
      bodyBytes !== undefined ? this.headerBytes + bodyBytes : (this.requestBytes[apiKey] ?? 256);
    // The buffer of a request the socket has taken is written into again: a fresh one per
    // request costs an allocation the runtime's collector is then told about.
    const spare = this.spare;
    this.spare = undefined;
    const w = spare ? spare.reset(size) : new Writer(size);
    const sizeAt = w.reserveInt32();
    w.int16(apiKey).int16(version).int32(id).nullableString(this.clientId);
    body(w);
    w.patchInt32(sizeAt, w.length - 4);
    if (bodyBytes === undefined) {
      this.requestBytes[apiKey] = Math.min(Math.ceil(w.offset * 1.25), 1 << 20);
    }
    const release = () => {
      if (w.capacity <= maxSpareBytes) this.spare = w;
    };
    const segments = w.segments();
    if (segments.length === 1) this.socket.write(segments[0] as Uint8Array, release);
    else {
      this.socket.cork();
      const last = segments.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(segments[i] as Uint8Array);
      this.socket.write(segments[last] as Uint8Array, release);
      this.socket.uncork();
    }
    return id;
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      let head = this.chunks[0] as Buffer;
      if (head.length < 4) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const size = head.readInt32BE(0);
      if (size < 4) {
        this.fail(new KafkaConnectionError(`${this.address}: bad frame size ${size}`));
        return;
      }
      if (this.buffered < 4 + size) return;
      if (head.length < 4 + size) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const frame = head.subarray(4, 4 + size);
      if (head.length === 4 + size) this.chunks.shift();
      else this.chunks[0] = head.subarray(4 + size);
      this.buffered -= 4 + size;
      this.dispatch(frame);
    }
  }

  private dispatch(frame: Buffer): void {
    const reader = new Reader(frame);
    const id = reader.int32();
    const pending = this.pending.get(id);
    if (!pending) {
      this.fail(new KafkaConnectionError(`${this.address}: answer to unknown request ${id}`));
      return;
    }
    this.pending.delete(id);
    try {
      pending.resolve(reader);
    } catch (error) {
      pending.reject(error as Error);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const p of this.pending.values()) {
      if (p.deadline <= now) {
        this.fail(
          new KafkaConnectionError(`${this.address}: no answer to API ${p.apiKey} in time`),
        );
        return;
      }
    }
  }

  private fail(error: Error): void {
    if (this.closeError) return;
    this.closeError = error;
    clearInterval(this.sweeper);
    this.socket.destroy();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }

  private async negotiateVersions(): Promise<void> {
    // v0–v2 are plain (non-flexible) on every broker since 0.10; 2 adds only the throttle.
    let reader = await this.request(ApiKey.ApiVersions, 2, () => {});
    let error = reader.int16();
    if (error === 35) {
      reader = await this.request(ApiKey.ApiVersions, 0, () => {});
      error = reader.int16();
    }
    if (error !== 0) throw new KafkaProtocolError(error, `${this.address}: ApiVersions refused`);
    const versions = new Map<number, readonly [number, number]>();
    const count = reader.int32();
    for (let i = 0; i < count; i++) {
      const key = reader.int16();
      versions.set(key, [reader.int16(), reader.int16()]);
    }
    this.versions = versions;
  }

  private async authenticate(sasl: SaslOptions): Promise<void> {
    const mechanism = sasl.mechanism.toUpperCase();
    // Without this check a broker that lacks SASL answers the handshake with a bare error
    // code, which read as a truncated (and retried) response instead of a clear refusal.
    if (!this.versions.has(ApiKey.SaslHandshake)) {
      throw new KafkaProtocolError(
        35,
        `${this.address}: SASL is configured but the broker does not offer it (no SaslHandshake in its ApiVersions)`,
      );
    }
    const handshake = await this.request(ApiKey.SaslHandshake, 1, (w) => w.string(mechanism));
    const error = handshake.int16();
    const offered = handshake.array((r) => r.string());
    if (error !== 0) {
      throw new KafkaProtocolError(
        error,
        `${this.address}: SASL mechanism ${mechanism} refused (the broker offers ${offered.join(", ") || "none"})`,
      );
    }
    const version = this.version(ApiKey.SaslAuthenticate, 0, 1);
    const exchange = async (bytes: Uint8Array): Promise<Uint8Array> => {
      const r = await this.request(ApiKey.SaslAuthenticate, version, (w) => w.bytes(bytes));
      const code = r.int16();
      const message = r.nullableString();
      const answer = r.bytes();
      if (code !== 0) {
        throw new KafkaProtocolError(
          code,
          `${this.address}: SASL ${mechanism} authentication failed${message ? `: ${message}` : ""}`,
        );
      }
      return answer;
    };
    if (sasl.mechanism === "plain") {
      await exchange(plainInitialResponse(sasl.username, sasl.password));
      return;
    }
    const scram = new ScramClient(sasl.mechanism, sasl.username, sasl.password);
    const serverFirst = await exchange(scram.clientFirst());
    const serverFinal = await exchange(scram.clientFinal(serverFirst));
    scram.verifyServerFinal(serverFinal);
  }
}

function openSocket(address: string, settings: WireSettings): Promise<Socket> {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    const tls = settings.tls;
    const socket = tls
      ? tlsConnect({
          host,
          port,
          servername: tls.sni ?? (/^[\d.:]+$/.test(host) ? undefined : host),
          ...(tls.ca ? { ca: tls.ca } : {}),
          ...(tls.cert ? { cert: tls.cert } : {}),
          ...(tls.key ? { key: tls.key } : {}),
          ...(tls.pfx ? { pfx: Buffer.from(tls.pfx) } : {}),
          ...(tls.passphrase ? { passphrase: tls.passphrase } : {}),
          rejectUnauthorized: !tls.insecure,
        })
      : netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new KafkaConnectionError(`${address}: connect timed out`));
    }, settings.connectTimeoutMs);
    socket.once(tls ? "secureConnect" : "connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new KafkaConnectionError(`${address}: ${error.message}`, error));
    });
  });
}
