/**
 * The client's connections: one per broker and lane, opened on first use and reopened after
 * they close, plus a bootstrap connection for requests any broker answers. Brokers are
 * known by node id from metadata (or from FindCoordinator).
 */
import { KafkaConnectionError, KafkaProtocolError } from "../protocol/errors.ts";
import { WireConnection, type WireSettings } from "./wire-connection.ts";

/**
 * Which connection a request goes on: fetch long polls and group joins (which the broker
 * holds until the group settles) must not hold up anything else.
 */
export type Lane = "main" | "fetch" | "group";

export class ConnectionPool {
  private readonly settings: WireSettings;
  private readonly brokers = new Map<number, string>();
  private readonly connections = new Map<string, Promise<WireConnection>>();
  private bootstrap: Promise<WireConnection> | undefined;
  private closed = false;
  /** Aborts connections still being opened when the client closes. */
  private readonly closing = new AbortController();

  constructor(settings: WireSettings) {
    this.settings = settings;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sets the address of broker `node` (from metadata: the cluster's word wins). */
  setBroker(node: number, address: string): void {
    this.brokers.set(node, address);
  }

  /** Records a broker learnt outside Metadata (a group coordinator), unless already known. */
  addBroker(node: number, address: string): void {
    if (!this.brokers.has(node)) this.brokers.set(node, address);
  }

  /** The connection to broker `node` for `lane`, opened on first use. */
  connection(node: number, lane: Lane = "main"): Promise<WireConnection> {
    if (this.closed) return Promise.reject(new KafkaConnectionError("Kafka client is closed"));
    const key = `${lane}/${node}`;
    let pending = this.connections.get(key);
    if (!pending) {
      const address = this.brokers.get(node);
      if (!address) {
        return Promise.reject(new KafkaConnectionError(`broker ${node} is not in the metadata`));
      }
      pending = WireConnection.open(address, this.settings, this.closing.signal);
      this.connections.set(key, pending);
      const forget = () => {
        if (this.connections.get(key) === pending) this.connections.delete(key);
      };
      pending.then((c) => c.onClose(forget), forget);
    }
    return pending;
  }

  /** Drops the `lane` connection to `node` (it is reopened on next use). */
  dropConnection(node: number, lane: Lane): void {
    const key = `${lane}/${node}`;
    const pending = this.connections.get(key);
    this.connections.delete(key);
    pending?.then(
      (c) => c.close(),
      () => {},
    );
  }

  /** A connection for requests any broker answers: any open one, else a bootstrap server. */
  async anyConnection(): Promise<WireConnection> {
    if (this.closed) throw new KafkaConnectionError("Kafka client is closed");
    for (const [key, pending] of this.connections) {
      if (key.startsWith("main/")) {
        const connection = await pending.catch(() => undefined);
        if (connection && !connection.closed) return connection;
      }
    }
    if (this.bootstrap) {
      const connection = await this.bootstrap.catch(() => undefined);
      if (connection && !connection.closed) return connection;
    }
    this.bootstrap = this.openBootstrap();
    return this.bootstrap;
  }

  /** Closes every connection; requests in flight fail. */
  close(): void {
    this.closed = true;
    this.closing.abort();
    for (const pending of this.connections.values()) {
      pending.then(
        (c) => c.close(),
        () => {},
      );
    }
    this.connections.clear();
    this.bootstrap?.then(
      (c) => c.close(),
      () => {},
    );
    this.bootstrap = undefined;
  }

  private async openBootstrap(): Promise<WireConnection> {
    const errors: string[] = [];
    for (const server of this.settings.servers) {
      try {
        return await WireConnection.open(server, this.settings, this.closing.signal);
      } catch (error) {
        if (error instanceof KafkaProtocolError) throw error;
        errors.push((error as Error).message);
      }
    }
    throw new KafkaConnectionError(`no Kafka bootstrap server answered: ${errors.join("; ")}`);
  }
}

/** "host:port" for a broker a response names (IPv6 literals in brackets). */
export function brokerAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
