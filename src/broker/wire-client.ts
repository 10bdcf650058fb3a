/**
 * A minimal Kafka wire client over one TCP connection, for the broker's own tests and
 * tools: it sends hand-built requests (including ones no real client would send) and
 * hands back each response body. Not a Kafka client for application code.
 */
import { connect, type Socket } from "node:net";
import { Reader, Writer } from "../kafka/protocol/wire.ts";

/** How to frame one request. */
export interface WireRequestOptions {
  /** Request header v2 (tagged fields) instead of v1. */
  flexibleRequest?: boolean;
  /** Response header v1: skip its tagged fields before handing back the body. */
  flexibleResponse?: boolean;
  clientId?: string | null;
}

interface Pending {
  resolve(reader: Reader): void;
  reject(err: Error): void;
  flexibleResponse: boolean;
}

/** One connection speaking the Kafka framing. */
export class WireClient {
  private readonly socket: Socket;
  private readonly pending = new Map<number, Pending>();
  /** Correlation ids of answered requests, in arrival order. */
  readonly answered: number[] = [];
  private nextCorrelationId = 1;
  private buffered = new Uint8Array(0);
  /** Resolves when the connection has closed (either side). */
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        for (const p of this.pending.values()) p.reject(new Error("connection closed"));
        this.pending.clear();
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  /** Connects to `host:port`. */
  static connect(host: string, port: number): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new WireClient(socket));
      });
      socket.once("error", reject);
    });
  }

  /** Sends a request and resolves with a reader positioned at the response body. */
  request(
    apiKey: number,
    apiVersion: number,
    body: (w: Writer) => void,
    options: WireRequestOptions = {},
  ): Promise<Reader> {
    const correlationId = this.send(apiKey, apiVersion, body, options);
    return new Promise((resolve, reject) => {
      this.pending.set(correlationId, {
        resolve,
        reject,
        flexibleResponse: options.flexibleResponse ?? false,
      });
    });
  }

  /** Sends a request that expects no answer (Produce acks=0); returns its correlation id. */
  send(
    apiKey: number,
    apiVersion: number,
    body: (w: Writer) => void,
    options: WireRequestOptions = {},
  ): number {
    const correlationId = this.nextCorrelationId++;
    const w = new Writer(128);
    const sizeAt = w.reserveInt32();
    w.int16(apiKey).int16(apiVersion).int32(correlationId);
    w.nullableString(options.clientId === undefined ? "wire-client" : options.clientId);
    if (options.flexibleRequest === true) w.taggedFields();
    body(w);
    w.patchInt32(sizeAt, w.length - 4);
    this.socket.write(w.bytesView());
    return correlationId;
  }

  /** Writes bytes as they are (malformed frames for fuzzing). */
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  private onData(chunk: Uint8Array): void {
    const merged = new Uint8Array(this.buffered.length + chunk.length);
    merged.set(this.buffered);
    merged.set(chunk, this.buffered.length);
    let at = 0;
    const view = new DataView(merged.buffer);
    while (merged.length - at >= 4) {
      const size = view.getInt32(at);
      if (merged.length - at - 4 < size) break;
      const frame = merged.subarray(at + 4, at + 4 + size);
      at += 4 + size;
      const reader = new Reader(frame);
      const correlationId = reader.int32();
      this.answered.push(correlationId);
      const waiter = this.pending.get(correlationId);
      if (waiter === undefined) continue;
      this.pending.delete(correlationId);
      if (waiter.flexibleResponse) reader.taggedFields();
      waiter.resolve(reader);
    }
    this.buffered = merged.slice(at);
  }
}
